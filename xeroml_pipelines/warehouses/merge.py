"""The idempotent load of one partition file, as SQL shared by every warehouse.

A record is `(project_id, id)`; the version with the greatest `event_ts` wins. Per load:
1. the file goes into a staging table (each warehouse has its own way);
2. its tombstones are remembered in `<target>__tombstones` (greatest `event_ts` per record), so
   a file loaded out of order can never resurrect a deleted record;
3. target rows that a tombstone supersedes are deleted;
4. live staging rows newer than both the target row and any tombstone are merged in.
Loading the same file twice, or files in any order, gives the same table.

The statements stay within what DuckDB, Snowflake, BigQuery and Redshift all accept: MERGE
sources are filtered beforehand (Redshift's MERGE takes no `WHEN MATCHED AND ...`), and the
delete uses a correlated EXISTS.
"""

from __future__ import annotations

from dataclasses import dataclass

from xeroml_pipelines import schemas


@dataclass(frozen=True)
class MergeSql:
    target: str
    tombstones: str
    staging: str
    columns: tuple[str, ...]
    quote: str = '"'
    # BigQuery resolves the target's columns only through an alias in DELETE; Redshift allows
    # no alias there: the target's own name qualifies them instead.
    delete_alias: bool = False

    def _q(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    def tombstones_ddl(self, string_type: str, ts_type: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.tombstones} "
            f"(project_id {string_type} NOT NULL, id {string_type} NOT NULL, event_ts {ts_type} NOT NULL)"
        )

    def statements(self) -> list[str]:
        cols = ", ".join(self._q(c) for c in self.columns)
        values = ", ".join(f"s.{self._q(c)}" for c in self.columns)
        updates = ", ".join(f"{self._q(c)} = s.{self._q(c)}" for c in self.columns if c not in ("project_id", "id"))
        key = "t.project_id = s.project_id AND t.id = s.id"
        row = "x" if self.delete_alias else self.target
        return [
            f"""MERGE INTO {self.tombstones} AS t
USING (
    SELECT n.project_id, n.id, n.event_ts
    FROM (SELECT project_id, id, max(event_ts) AS event_ts FROM {self.staging} WHERE is_deleted GROUP BY project_id, id) AS n
    LEFT JOIN {self.tombstones} AS o ON o.project_id = n.project_id AND o.id = n.id
    WHERE o.id IS NULL OR n.event_ts > o.event_ts
) AS s
ON {key}
WHEN MATCHED THEN UPDATE SET event_ts = s.event_ts
WHEN NOT MATCHED THEN INSERT (project_id, id, event_ts) VALUES (s.project_id, s.id, s.event_ts)""",
            f"""DELETE FROM {self.target}{" AS x" if self.delete_alias else ""}
WHERE EXISTS (
    SELECT 1 FROM {self.tombstones} AS d
    JOIN {self.staging} AS s ON s.project_id = d.project_id AND s.id = d.id AND s.is_deleted
    WHERE d.project_id = {row}.project_id AND d.id = {row}.id AND d.event_ts >= {row}.event_ts
)""",
            f"""MERGE INTO {self.target} AS t
USING (
    SELECT n.* FROM {self.staging} AS n
    LEFT JOIN {self.target} AS o ON o.project_id = n.project_id AND o.id = n.id
    LEFT JOIN {self.tombstones} AS d ON d.project_id = n.project_id AND d.id = n.id
    WHERE NOT n.is_deleted AND (o.id IS NULL OR n.event_ts >= o.event_ts) AND (d.id IS NULL OR d.event_ts < n.event_ts)
) AS s
ON {key}
WHEN MATCHED THEN UPDATE SET {updates}
WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})""",
        ]


def merge_sql(
    table: str,
    target: str,
    staging: str,
    quote: str = '"',
    delete_alias: bool = False,
    exclude: frozenset[str] = schemas.NO_EXCLUSIONS,
) -> MergeSql:
    return MergeSql(
        target=target,
        tombstones=f"{target}__tombstones",
        staging=staging,
        columns=tuple(name for name, _, _ in schemas.columns(table, exclude)),
        quote=quote,
        delete_alias=delete_alias,
    )
