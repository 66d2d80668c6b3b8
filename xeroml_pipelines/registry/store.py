"""The registry's table, through SQLAlchemy: a SQLite file on the embedded defaults, PostgreSQL in
a deployment (`XEROML_REGISTRY_URL`, e.g. `postgresql://user@host/db`; a schema of its own with
`?options=-csearch_path%3Dxeroml`). One row per entry: its item in plain JSON without
credentials, the credentials as one Fernet token, and its state (enabled, why not, failures)."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import OperationalError

from xeroml_pipelines.config.destinations import stored_location
from xeroml_pipelines.errors import ConfigError
from xeroml_pipelines.registry.endpoints import check_destination
from xeroml_pipelines.registry.entries import Entry, from_stored, stored_form
from xeroml_pipelines.registry.keyring import Keyring

URL_ENV = "XEROML_REGISTRY_URL"
DEFAULT_FILE = "xeroml-registry.sqlite"  # beside the demo database

_metadata = MetaData()
EXPORTS = Table(
    "xeroml_export_registry",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("project_id", String(256), nullable=False, index=True),
    Column("spec", Text, nullable=False),  # the `exports:` item, JSON, without credentials
    Column("secret_names", Text, nullable=False, default="[]"),
    Column("secrets", Text),  # Fernet token of {name: value}, or NULL
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text),
    # who disabled it: "owner" (`xeroml destinations disable`) or "platform" (its destination kept
    # refusing); only the platform's are caught up when enabled again
    Column("disabled_by", String(16)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
# The windows a registered export missed (its destination failed, or the platform had disabled
# it): what the catch-up sensor exports again, oldest first. A row goes when its window is written.
MISSED = Table(
    "xeroml_export_missed",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("table_name", String(64), primary_key=True),
    Column("partition", String(32), primary_key=True),
    Column("cadence", String(16), nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retry_at", DateTime(timezone=True), nullable=False, index=True),
)


def default_url() -> str:
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    home = Path(os.environ.get("XEROML_HOME") or Path.cwd())
    return f"sqlite:///{(home / DEFAULT_FILE).absolute()}"


@dataclass(frozen=True)
class Registered:
    """An entry as stored, with its state."""

    entry: Entry
    disabled_reason: str | None
    disabled_by: str | None
    consecutive_failures: int
    last_error: str | None
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.entry.export.name


@dataclass(frozen=True)
class Listed:
    """What choosing a run's exports needs of an entry, read without validating it or its
    credentials: a schedule's tick reads every entry."""

    name: str
    project_id: str
    cadence: str
    enabled: bool
    disabled_by: str | None


@dataclass(frozen=True)
class Summary:
    """An entry as `xeroml destinations list` shows it, read without validating it again."""

    name: str
    project_id: str
    location: str
    cadence: str
    tables: tuple[str, ...]
    enabled: bool
    consecutive_failures: int


class Registry:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        # a plain postgresql:// means the driver a Dagster deployment on PostgreSQL already has
        driver_url = "postgresql+psycopg2://" + self.url.split("://", 1)[1] if self.url.startswith("postgresql://") else self.url
        self._engine: Engine = create_engine(driver_url)

    def create(self) -> Registry:
        """Creates the table if it is missing (idempotent)."""
        with self._errors():
            _metadata.create_all(self._engine)
            columns = {c["name"] for c in inspect(self._engine).get_columns(EXPORTS.name)}
            if "disabled_by" not in columns:  # a registry made before the column was
                with self._engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {EXPORTS.name} ADD COLUMN disabled_by VARCHAR(16)"))
        return self

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as e:
            where = self._engine.url.render_as_string(hide_password=True)
            raise ConfigError(f"cannot use the export registry at {where}: {str(e.orig).strip().splitlines()[0]}") from None

    def _row(self, entry: Entry, keyring: Keyring | None) -> dict:
        secrets = None
        if entry.secrets:
            if keyring is None:
                keyring = Keyring.from_env()
            secrets = keyring.seal(entry.secrets)
        return {
            "name": entry.export.name,
            "project_id": entry.export.project_id,
            "spec": json.dumps(stored_form(entry), sort_keys=True),
            "secret_names": json.dumps(list(entry.secret_names)),
            "secrets": secrets,
            "enabled": entry.enabled,
        }

    def put(self, entries: Sequence[Entry], replace: bool = False, keyring: Keyring | None = None) -> None:
        """Adds the entries in one transaction: all or none. An existing name is an error unless
        `replace` (its state, failures included, starts afresh)."""
        for entry in entries:  # what a customer supplied may not point inside the platform
            check_destination(entry.export, entry.secrets or {})
        names = [e.export.name for e in entries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"entries named twice: {', '.join(twice)}")
        rows = [self._row(e, keyring) for e in entries]  # sealed before anything is written
        now = datetime.now(UTC)
        with self._errors(), self._engine.begin() as conn:
            existing = set(conn.scalars(select(EXPORTS.c.name).where(EXPORTS.c.name.in_(names))))
            if existing and not replace:
                raise ConfigError(f"already registered: {', '.join(sorted(existing))} (use --replace to overwrite)")
            if existing:
                conn.execute(EXPORTS.delete().where(EXPORTS.c.name.in_(existing)))
            conn.execute(EXPORTS.insert(), [{**r, "consecutive_failures": 0, "created_at": now, "updated_at": now} for r in rows])

    def get(self, name: str) -> Registered:
        with self._errors(), self._engine.connect() as conn:
            row = conn.execute(select(EXPORTS).where(EXPORTS.c.name == name)).mappings().first()
        if row is None:
            raise ConfigError(f"no registered export named {name!r} (`xeroml destinations list` shows them)")
        return _registered(row)

    def listing(self) -> list[Listed]:
        columns = (EXPORTS.c.name, EXPORTS.c.project_id, EXPORTS.c.enabled, EXPORTS.c.disabled_by, EXPORTS.c.spec)
        with self._errors(), self._engine.connect() as conn:
            rows = conn.execute(select(*columns).order_by(EXPORTS.c.name)).all()
        return [
            Listed(name, project_id, json.loads(spec)["cadence"], bool(enabled), disabled_by)
            for name, project_id, enabled, disabled_by, spec in rows
        ]

    def summaries(self) -> list[Summary]:
        columns = (EXPORTS.c.name, EXPORTS.c.project_id, EXPORTS.c.enabled, EXPORTS.c.consecutive_failures, EXPORTS.c.spec)
        with self._errors(), self._engine.connect() as conn:
            rows = conn.execute(select(*columns).order_by(EXPORTS.c.name)).all()
        summaries = []
        for name, project_id, enabled, failures, stored in rows:
            spec = json.loads(stored)
            location = stored_location(spec["destination"])
            summaries.append(Summary(name, project_id, location, spec["cadence"], tuple(spec["tables"]), bool(enabled), failures))
        return summaries

    def some(self, names: Collection[str]) -> list[Registered]:
        """The entries of `names` (those registered), by name."""
        found: list[Registered] = []
        chosen = sorted(names)
        with self._errors(), self._engine.connect() as conn:
            for start in range(0, len(chosen), 500):
                query = select(EXPORTS).where(EXPORTS.c.name.in_(chosen[start : start + 500])).order_by(EXPORTS.c.name)
                found += [_registered(r) for r in conn.execute(query).mappings()]
        return found

    def set_enabled(self, name: str, enabled: bool, reason: str | None = None) -> None:
        """By the entry's owner. Enabling it keeps the windows the platform recorded as missed:
        the catch-up sensor exports them."""
        self._update(
            name,
            enabled=enabled,
            disabled_reason=None if enabled else reason,
            disabled_by=None if enabled else "owner",
            consecutive_failures=0,
        )

    def remove(self, name: str) -> None:
        self.get(name)
        with self._errors(), self._engine.begin() as conn:
            conn.execute(EXPORTS.delete().where(EXPORTS.c.name == name))
            conn.execute(MISSED.delete().where(MISSED.c.name == name))

    def open_secrets(self, name: str, keyring: Keyring | None = None) -> dict[str, str]:
        """The entry's stored credentials, for a run or a probe: never printed nor logged."""
        with self._errors(), self._engine.connect() as conn:
            token = conn.scalar(select(EXPORTS.c.secrets).where(EXPORTS.c.name == name))
        return (keyring or Keyring.from_env()).open(token) if token else {}

    def rotate(self, keyring: Keyring | None = None) -> int:
        """Re-encrypts every entry's credentials under the newest key; how many it rewrote."""
        keyring = keyring or Keyring.from_env()
        with self._errors(), self._engine.begin() as conn:
            rows = conn.execute(select(EXPORTS.c.name, EXPORTS.c.secrets).where(EXPORTS.c.secrets.is_not(None))).all()
            for name, token in rows:
                conn.execute(EXPORTS.update().where(EXPORTS.c.name == name).values(secrets=keyring.rotate(token)))
        return len(rows)

    def _update(self, name: str, **values: object) -> None:
        with self._errors(), self._engine.begin() as conn:
            done = conn.execute(EXPORTS.update().where(EXPORTS.c.name == name).values(updated_at=datetime.now(UTC), **values))
        if done.rowcount == 0:
            raise ConfigError(f"no registered export named {name!r} (`xeroml destinations list` shows them)")


def _registered(row: RowMapping) -> Registered:
    names = tuple(json.loads(row["secret_names"]))
    entry = from_stored(json.loads(row["spec"]), bool(row["enabled"]), names, row["name"])
    return Registered(
        entry, row["disabled_reason"], row["disabled_by"], row["consecutive_failures"], row["last_error"], row["updated_at"]
    )
