"""What the fleet's runs read from the registry and write back to it: which registered exports a
shard runs, what each run wrote or failed, the windows missed (caught up later, oldest first),
and a project disabled after its destination refused too many runs in a row."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, select, tuple_

from xeroml_pipelines.errors import ConfigError, ExportError
from xeroml_pipelines.registry.store import EXPORTS, MISSED, Registered, Registry

# a missed window is tried again after its retry delay, doubled per attempt, at most this late
_LONGEST_WAIT = timedelta(hours=6)


def shard_of(project_id: str, shards: int) -> int:
    """A project's shard: stable across processes and releases (Python's own hash is salted)."""
    return int.from_bytes(hashlib.sha256(project_id.encode()).digest()[:8], "big") % shards


@dataclass(frozen=True)
class Selection:
    exporting: list[Registered]  # enabled: the run exports them
    disabled_by_platform: list[Registered]  # their windows are recorded as missed, for the catch-up


def select_due(registry: Registry, cadence: str, shard: int, shards: int, wanted: Collection[str] = ()) -> Selection:
    """The registered exports of `cadence` in `shard`; with `wanted` (export names or project
    ids) only those. A wanted name that is not registered is an error, not an empty run."""
    listed = registry.listing()
    if wanted:
        known = {r.name for r in listed} | {r.project_id for r in listed}
        if unknown := sorted(set(wanted) - known):
            raise ConfigError(f"no registered export or project {', '.join(map(repr, unknown))} (`xeroml destinations list`)")
    chosen = [
        r
        for r in listed
        if r.cadence == cadence
        and shard_of(r.project_id, shards) == shard
        and (not wanted or r.name in wanted or r.project_id in wanted)
        and (r.enabled or r.disabled_by == "platform")
    ]
    # only the shard's entries are validated and read with their credentials' names
    entries = registry.some([r.name for r in chosen])
    return Selection(
        exporting=[r for r in entries if r.entry.enabled],
        disabled_by_platform=[r for r in entries if not r.entry.enabled and r.disabled_by == "platform"],
    )


@dataclass
class RunRecord:
    """One registered export's part of a run, over its tables and windows."""

    written: set[tuple[str, str]] = field(default_factory=set)  # (table, partition)
    failed: dict[tuple[str, str], ExportError] = field(default_factory=dict)

    @property
    def refused(self) -> ExportError | None:
        return next((e for e in self.failed.values() if e.permanent), None)


def record_run(
    registry: Registry,
    cadence: str,
    records: Mapping[str, RunRecord],
    disabled: Mapping[str, Sequence[tuple[str, str]]],
    disable_after: int,
    retry_delay_s: float,
) -> dict[str, str]:
    """Writes a run's outcome in one transaction; returns the exports it disabled, with why."""
    now = datetime.now(UTC)
    newly_disabled: dict[str, str] = {}
    with registry.engine.begin() as conn:
        written = [(name, t, p) for name, r in records.items() for t, p in r.written]
        for start in range(0, len(written), 500):
            keys = written[start : start + 500]
            conn.execute(MISSED.delete().where(tuple_(MISSED.c.name, MISSED.c.table_name, MISSED.c.partition).in_(keys)))
        clean = [name for name, r in records.items() if r.written and not r.failed]
        for start in range(0, len(clean), 500):
            conn.execute(
                EXPORTS.update()
                .where(and_(EXPORTS.c.name.in_(clean[start : start + 500]), EXPORTS.c.consecutive_failures > 0))
                .values(consecutive_failures=0, updated_at=now)
            )
        missed = {(name, t, p): str(e) for name, r in records.items() for (t, p), e in r.failed.items()}
        missed |= {(name, t, p): "the export was disabled" for name, keys in disabled.items() for t, p in keys}
        _upsert_missed(conn, cadence, missed, now, retry_delay_s)
        for name, record in records.items():
            if not record.failed:
                continue
            error = record.refused or next(iter(record.failed.values()))
            failures = conn.scalar(select(EXPORTS.c.consecutive_failures).where(EXPORTS.c.name == name)) or 0
            values: dict[str, object] = {"last_error": str(error), "updated_at": now}
            if error.permanent:
                values["consecutive_failures"] = failures + 1
                if failures + 1 >= disable_after:
                    reason = f"disabled after {failures + 1} runs in a row whose destination refused: {error}"
                    values |= {"enabled": False, "disabled_by": "platform", "disabled_reason": reason}
                    newly_disabled[name] = reason
            conn.execute(EXPORTS.update().where(EXPORTS.c.name == name).values(**values))
    return newly_disabled


def _upsert_missed(conn, cadence: str, missed: Mapping[tuple[str, str, str], str], now: datetime, delay_s: float) -> None:
    if not missed:
        return
    keys = list(missed)
    columns = (MISSED.c.name, MISSED.c.table_name, MISSED.c.partition)
    attempts = {
        (n, t, p): a for n, t, p, a in conn.execute(select(*columns, MISSED.c.attempts).where(tuple_(*columns).in_(keys))).all()
    }
    for key, error in missed.items():
        tries = attempts.get(key, 0) + 1
        retry_at = now + min(timedelta(seconds=delay_s * 2 ** (tries - 1)), _LONGEST_WAIT)
        values = {"error": error, "attempts": tries, "retry_at": retry_at, "cadence": cadence}
        if key in attempts:
            conn.execute(MISSED.update().where(tuple_(*columns) == key).values(**values))
        else:
            conn.execute(MISSED.insert().values(name=key[0], table_name=key[1], partition=key[2], **values))


@dataclass(frozen=True)
class Missed:
    name: str
    table: str
    partition: str
    cadence: str
    error: str | None
    attempts: int


def due_missed(registry: Registry, now: datetime | None = None) -> list[Missed]:
    """The missed windows of enabled exports whose retry time has come, oldest window first."""
    query = (
        select(MISSED.c.name, MISSED.c.table_name, MISSED.c.partition, MISSED.c.cadence, MISSED.c.error, MISSED.c.attempts)
        .join(EXPORTS, EXPORTS.c.name == MISSED.c.name)
        .where(EXPORTS.c.enabled.is_(True), MISSED.c.retry_at <= (now or datetime.now(UTC)))
        .order_by(MISSED.c.partition, MISSED.c.name, MISSED.c.table_name)
    )
    with registry.engine.connect() as conn:
        return [Missed(*row) for row in conn.execute(query).all()]


def missed_of(registry: Registry, name: str) -> list[Missed]:
    """An export's missed windows, oldest first (what `xeroml destinations show` lists)."""
    query = (
        select(MISSED.c.name, MISSED.c.table_name, MISSED.c.partition, MISSED.c.cadence, MISSED.c.error, MISSED.c.attempts)
        .where(MISSED.c.name == name)
        .order_by(MISSED.c.partition, MISSED.c.table_name)
    )
    with registry.engine.connect() as conn:
        return [Missed(*row) for row in conn.execute(query).all()]
