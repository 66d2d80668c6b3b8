"""Rows for XeroML's tables with every column defaulted, so a test states only what it is about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.sql.source_tables import SOURCES


def ts(text: str) -> datetime:
    """'2025-01-15 10:00' or '2025-01-15 10:00:00.123' as a UTC datetime."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(text)


def _base(event_ts: str, created: str | None) -> dict[str, Any]:
    return {"created_at": ts(created or event_ts), "updated_at": ts(event_ts), "event_ts": ts(event_ts), "is_deleted": 0}


def trace(id: str, event_ts: str, *, timestamp: str | None = None, project_id: str = "p1", **kw: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "timestamp": ts(timestamp or event_ts),
        "name": "chat",
        "user_id": "u1",
        "metadata": {"k": "v"},
        "release": None,
        "version": None,
        "project_id": project_id,
        "environment": "production",
        "public": False,
        "bookmarked": False,
        "tags": [],
        "input": '{"q":"hi"}',
        "output": '{"a":"hello"}',
        "session_id": None,
        **_base(event_ts, timestamp),
    }
    row.update(kw)
    return row


def observation(
    id: str, trace_id: str, event_ts: str, *, start_time: str | None = None, project_id: str = "p1", **kw: Any
) -> dict[str, Any]:
    row = {
        "id": id,
        "trace_id": trace_id,
        "project_id": project_id,
        "environment": "production",
        "type": "GENERATION",
        "parent_observation_id": None,
        "start_time": ts(start_time or event_ts),
        "end_time": None,
        "name": "llm",
        "metadata": {},
        "level": "DEFAULT",
        "status_message": None,
        "version": None,
        "input": None,
        "output": None,
        "provided_model_name": "gpt-4o",
        "internal_model_id": None,
        "model_parameters": None,
        "provided_usage_details": {},
        "usage_details": {},
        "provided_cost_details": {},
        "cost_details": {},
        "total_cost": None,
        "completion_start_time": None,
        "prompt_id": None,
        "prompt_name": None,
        "prompt_version": None,
        **_base(event_ts, start_time),
    }
    row.update(kw)
    return row


def score(id: str, event_ts: str, *, timestamp: str | None = None, project_id: str = "p1", **kw: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "timestamp": ts(timestamp or event_ts),
        "project_id": project_id,
        "environment": "production",
        "trace_id": None,
        "session_id": None,
        "dataset_run_id": None,
        "observation_id": None,
        "name": "quality",
        "value": 0.5,
        "source": "API",
        "comment": None,
        "metadata": {},
        "author_user_id": None,
        "config_id": None,
        "data_type": "NUMERIC",
        "string_value": None,
        "queue_id": None,
        **_base(event_ts, timestamp),
    }
    row.update(kw)
    return row


def insert(ch: ClickHouseResource, table: str, rows: list[dict[str, Any]]) -> None:
    names = [c.name for c in SOURCES[table].columns]
    data = [[r[n] for n in names] for r in rows]
    ch.get_client().insert(f"`{ch.database}`.`{table}`", data, column_names=names)
