"""The exported tables: one module per table declares its spec (`spec.ExportedTable`), and this
registry is the one list of them. The CLI's choices, the configuration's validation, the assets,
the sensor's change sources and every schema come from here."""

from __future__ import annotations

from xeroml_pipelines.tables import enriched_observations, observations, scores, sessions, traces
from xeroml_pipelines.tables.spec import ExportedTable

TABLES: dict[str, ExportedTable] = {
    t.name: t for t in (traces.TABLE, observations.TABLE, scores.TABLE, sessions.TABLE, enriched_observations.TABLE)
}
DEFAULT_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.default)


def exported_table(name: str) -> ExportedTable:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; the tables are: {', '.join(TABLES)}") from None
