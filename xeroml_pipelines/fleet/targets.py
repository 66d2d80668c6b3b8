"""From registered exports to what a fleet query writes: each one's destination (its credentials
opened from the registry only now, its endpoint checked again), and the groups of exports one
query can serve (the same mode, file format and columns)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from xeroml_pipelines.credentials import from_env
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.errors import ConfigError, ExportError
from xeroml_pipelines.export.fleet import Target
from xeroml_pipelines.registry.endpoints import check_destination
from xeroml_pipelines.registry.entries import SECRET_FIELDS
from xeroml_pipelines.registry.keyring import Keyring
from xeroml_pipelines.registry.store import Registered, Registry
from xeroml_pipelines.windows import Cadence, Mode


@dataclass(frozen=True)
class QueryGroup:
    """The exports of a table one query serves."""

    mode: Mode
    file_format: str
    exclude: frozenset[str]
    targets: tuple[Target, ...]

    @property
    def projects(self) -> tuple[str, ...]:
        return tuple(sorted({t.project_id for t in self.targets}))


def window_index(day: date, cadence: Cadence) -> int:
    """The `Window.index` of the first day or hour of `day`."""
    midnight = datetime.combine(day, time(), UTC)
    return int(midnight.timestamp()) // (3600 if cadence == "hourly" else 86400)


def open_targets(
    registry: Registry, entries: Sequence[Registered], cadence: Cadence, keyring: Keyring | None, opened: ExitStack
) -> tuple[dict[str, Target], dict[str, ExportError]]:
    """A target per entry, its destination's clients closed when `opened` closes; or why it
    cannot have one: a stored endpoint that now resolves inside the platform, credentials that
    no longer open or a credential's environment variable unset, is that entry's refusal, not the
    run's."""
    targets: dict[str, Target] = {}
    refused: dict[str, ExportError] = {}
    for registered in entries:
        try:
            credentials = _credentials(registry, registered, keyring)
            check_destination(registered.entry.export, credentials)
            destination = registered.entry.export.destination.with_credentials(credentials)
        except ConfigError as e:
            refused[registered.name] = ExportError(f"{registered.name}: {e}", permanent=True)
            continue
        opened.callback(destination.close)
        targets[registered.name] = target(registered, cadence, destination)
    return targets, refused


def _credentials(registry: Registry, registered: Registered, keyring: Keyring | None) -> dict[str, str]:
    """The entry's stored credentials, and those its `*_env` fields name, read now."""
    found = registry.open_secrets(registered.name, keyring) if registered.entry.secret_names else {}
    destination = registered.entry.export.destination
    for name in SECRET_FIELDS[destination.provider]:
        variable = getattr(destination, f"{name}_env", None)
        if variable and name not in found:
            found[name] = from_env(variable, f"destination.{name}_env") or ""
    return found


def target(registered: Registered, cadence: Cadence, destination: Destination) -> Target:
    export = registered.entry.export
    first, last = window_span(registered, cadence)
    return Target(registered.name, export.project_id, destination, export.object_layout(), first, last)


def window_span(registered: Registered, cadence: Cadence) -> tuple[int, int | None]:
    """The `Window.index` of an export's first window (its start date) and last (its end date)."""
    export = registered.entry.export
    last = window_index(export.end_date + timedelta(days=1), cadence) - 1 if export.end_date else None
    return window_index(export.start_date, cadence), last


def query_groups(table: str, entries: Sequence[Registered], targets: dict[str, Target]) -> list[QueryGroup]:
    """The entries exporting `table`, by what their query must return."""
    groups: dict[tuple[Mode, str, frozenset[str]], list[Target]] = {}
    for registered in entries:
        export = registered.entry.export
        if table in export.tables and registered.name in targets:
            key = (export.mode, export.format, export.excluded(table))
            groups.setdefault(key, []).append(targets[registered.name])
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], sorted(kv[0][2])))
    return [QueryGroup(mode, fmt, exclude, tuple(found)) for (mode, fmt, exclude), found in ordered]
