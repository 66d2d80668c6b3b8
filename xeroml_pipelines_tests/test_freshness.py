"""Freshness: each export asset carries a Dagster freshness policy (a partition is due lag + grace
after its window closes), and the alert sensor posts to a webhook when an export turns late and
when it is fresh again, once per change."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, build_sensor_context
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._utils.schedules import get_latest_completed_cron_tick

from xeroml_pipelines.config import ConfigError, parse_config
from xeroml_pipelines.defs.alerts.resources import SlackWebhook
from xeroml_pipelines.defs.alerts.sensors import build_freshness_alert_sensor
from xeroml_pipelines.defs.export.assets import freshness_policy


def _config(tmp_path: Path, alerts: bool = True, **export) -> dict:
    return {
        "clickhouse": {"url": f"chdb://{tmp_path / 'db'}"},
        "exports": [
            {
                "name": "exp",
                "project_id": "demo",
                "start_date": "2025-01-01",
                "destination": {"provider": "local", "path": str(tmp_path / "out")},
                "tables": ["traces", "scores"],
                **export,
            }
        ],
        **({"alerts": {"webhook_url_env": "XEROML_TEST_WEBHOOK"}} if alerts else {}),
    }


def _parse(config: dict):
    return parse_config(yaml.safe_dump(config))


def _fresh(policy, materialized: datetime, now: datetime) -> bool:
    """What Dagster's cron freshness evaluator decides (freshness_evaluator.py), at `now`."""
    tick = get_latest_completed_cron_tick(policy.deadline_cron, now, policy.timezone)
    return materialized.timestamp() >= tick.timestamp() - policy.lower_bound_delta.total_seconds()


@pytest.mark.parametrize(
    "cadence,lag,grace,cron,closed",
    [
        ("daily", 20, None, "20 1 * * *", datetime(2025, 3, 2, tzinfo=UTC)),  # default grace: 60 min
        ("daily", 150, 90, "0 4 * * *", datetime(2025, 3, 2, tzinfo=UTC)),
        ("hourly", 20, None, "0 * * * *", datetime(2025, 3, 2, 13, tzinfo=UTC)),  # the rest of the hour: 40 min
        ("hourly", 5, 10, "15 * * * *", datetime(2025, 3, 2, 13, tzinfo=UTC)),
    ],
)
def test_a_partition_is_due_lag_plus_grace_after_its_window_closes(tmp_path, cadence, lag, grace, cron, closed) -> None:
    config = _parse(_config(tmp_path, cadence=cadence, lag_minutes=lag, freshness_grace_minutes=grace))
    (export,) = config.exports
    policy = freshness_policy(export)
    assert policy.deadline_cron == cron
    deadline = closed + timedelta(minutes=export.freshness_deadline_minutes)
    on_time = closed + timedelta(minutes=lag)  # the schedule's run
    # at the deadline: the run of the window that closed is what makes the asset fresh
    assert _fresh(policy, on_time, deadline + timedelta(seconds=1))
    assert not _fresh(policy, closed - timedelta(minutes=1), deadline + timedelta(seconds=1))  # only the previous window's run
    # and it stays fresh until the next window's deadline
    step = timedelta(hours=1) if cadence == "hourly" else timedelta(days=1)
    assert _fresh(policy, on_time, deadline + step - timedelta(seconds=1))
    assert not _fresh(policy, on_time, deadline + step + timedelta(seconds=1))


def test_grace_that_overruns_the_next_window_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="lag_minutes \\+ freshness_grace_minutes must be at most 60 \\(the hourly cadence\\)"):
        _parse(_config(tmp_path, cadence="hourly", lag_minutes=20, freshness_grace_minutes=41))


class _Webhook(BaseHTTPRequestHandler):
    posts: list[str] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).posts.append(body["text"])
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Webhook]]]:
    handler = type("Handler", (_Webhook,), {"posts": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def _change(instance: DagsterInstance, table: str, new: FreshnessState, previous: FreshnessState) -> None:
    # what Dagster's freshness daemon records when it judges an asset
    instance._report_runless_asset_event(  # noqa: SLF001
        FreshnessStateChange(
            key=AssetKey(["exp", table]),
            new_state=new,
            previous_state=previous,
            state_change_timestamp=datetime.now(UTC).timestamp(),
        )
    )


def test_alert_sensor_posts_each_change_once(tmp_path, webhook) -> None:
    url, hook = webhook
    sensor = build_freshness_alert_sensor(_parse(_config(tmp_path)))
    with DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None):
            context = build_sensor_context(instance=instance, cursor=cursor, resources={"alert_webhook": SlackWebhook(url=url)})
            result = sensor.evaluate_tick(context)
            return result, context.cursor

        _change(instance, "traces", FreshnessState.PASS, FreshnessState.UNKNOWN)
        result, cursor = tick(None)
        assert hook.posts == [] and result.skip_message == "no change in the exports' freshness"

        _change(instance, "traces", FreshnessState.FAIL, FreshnessState.PASS)
        _, cursor = tick(cursor)
        (late,) = hook.posts
        assert "xeroml exports are late" in late and "exp/traces: no partition exported within 80 min" in late
        assert "exp/scores" not in late  # never judged: nothing to say

        _, cursor = tick(cursor)  # still late: not posted again
        assert len(hook.posts) == 1

        hook.status = 500  # the webhook refuses: the tick fails, the change is posted by a later tick
        _change(instance, "scores", FreshnessState.FAIL, FreshnessState.PASS)
        _change(instance, "traces", FreshnessState.PASS, FreshnessState.FAIL)
        with pytest.raises(Exception, match="500"):
            tick(cursor)
        hook.status = 200
        _, cursor = tick(cursor)
        text = hook.posts[-1]
        assert "exp/scores: no partition exported" in text and "exp/traces: fresh again" in text
        assert len(hook.posts) == 3  # the refused post, then the one that went through


def test_alerts_need_the_webhook_env_var(tmp_path, monkeypatch) -> None:
    """The webhook URL is a secret: only its env var's name is in the YAML; unset, the sensor's
    tick fails naming it (the exports themselves are not affected)."""
    from xeroml_pipelines.defs.location import build_definitions

    monkeypatch.delenv("XEROML_TEST_WEBHOOK", raising=False)
    defs = build_definitions(_parse(_config(tmp_path)))
    assert "xeroml_freshness_alerts" in {s.name for s in defs.sensors}
    assert "XEROML_TEST_WEBHOOK" not in json.dumps(_config(tmp_path)["exports"])
    without = build_definitions(_parse(_config(tmp_path, alerts=False)))
    assert "xeroml_freshness_alerts" not in {s.name for s in without.sensors}
