"""What a query returns per record: its JSON line as ClickHouse writes it (pinned output settings,
invalid UTF-8 replaced and counted, tombstones with their content nulled), or its typed columns
for a Parquet file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

# `lines`: one `_line` column, the record's JSON line. `columns`: the record's columns, typed,
# and `_row_bytes`, the record's in-memory size (Parquet row groups are cut by it).
Shape = Literal["lines", "columns"]

# ClickHouse writes the JSON lines itself (formatRow, in parallel on the reading threads):
# these settings fix every byte of that output, so a server upgrade or a user profile cannot
# change the files. They live in the SQL text, not per-call settings: on chDB per-call settings
# turn a stream into one materialized result.
JSON_SETTINGS = (
    "date_time_output_format = 'iso'",  # RFC 3339 in UTC, milliseconds: 2025-01-13T08:00:00.000Z
    "output_format_json_quote_64bit_integers = 0",
    "output_format_json_quote_decimals = 0",
    "output_format_decimal_trailing_zeros = 0",
    "output_format_json_quote_denormals = 0",
    "output_format_json_escape_forward_slashes = 0",
    "output_format_json_named_tuples_as_objects = 1",
    # Bare column names mean the stored columns, never the same-named cleaned values or
    # nulled tombstone fields: WHERE, the sort keys and the hash see what is stored.
    "prefer_column_name_to_alias = 1",
)
ARROW_SETTINGS = (
    "output_format_arrow_string_as_string = 1",
    "output_format_arrow_low_cardinality_as_dictionary = 0",
    # ClickHouse LZ4-compresses Arrow output by default: in-process (chDB) that is ~0.4 s per
    # 500 MB of lines compressed and decompressed again for nothing; over HTTP the transport
    # compresses (clickhouse-connect negotiates it).
    "output_format_arrow_compression_method = 'none'",
)


# The latest-version subqueries hold a set of the window's ids; using it for index analysis
# builds a sorted copy of every id for the primary key, which prunes nothing the window's own
# event_ts range does not already prune: 2M ids took +300 MB and 1.2 s more to select.
SELECTION_SETTINGS = ("use_index_for_in_with_subqueries = 0",)


def settings(block_rows: int) -> str:
    # Blocks are the unit of streaming: a block of 3 KB observations is what is in flight.
    pinned = (*JSON_SETTINGS, *ARROW_SETTINGS, *SELECTION_SETTINGS)
    return f"SETTINGS {', '.join(pinned)}, max_block_size = {int(block_rows)}"


def map_value_type(ch_type: str) -> str:
    return ch_type.rsplit(",", 1)[1].strip().rstrip(")")


def valid_utf8(name: str, ch_type: str) -> str | None:
    """A string-bearing column with invalid UTF-8 replaced by U+FFFD (as toValidUTF8 does), or
    None for other types. The replacement runs only on the rare rows that need it: checking
    is a SIMD scan, rewriting is a copy."""
    q = f"`{name}`"
    if ch_type.startswith("Map("):
        value = map_value_type(ch_type)
        plain = ch_type.replace("LowCardinality(String)", "String")
        if value == "String":
            ok = f"arrayAll(x -> isValidUTF8(x), mapKeys({q})) AND arrayAll(x -> isValidUTF8(x), mapValues({q}))"
            fixed = f"mapApply((k, v) -> (toValidUTF8(k), toValidUTF8(v)), {q})"
        else:
            ok = f"arrayAll(x -> isValidUTF8(x), mapKeys({q}))"
            fixed = f"mapApply((k, v) -> (toValidUTF8(k), v), {q})"
        return f"if({ok}, CAST({q}, '{plain}'), CAST({fixed}, '{plain}'))"
    if ch_type == "Array(String)":
        return f"if(arrayAll(x -> isValidUTF8(x), {q}), {q}, arrayMap(x -> toValidUTF8(x), {q}))"
    if "String" in ch_type:
        return f"if(isValidUTF8(ifNull({q}, '')), {q}, toValidUTF8({q}))"
    return None


def invalid_utf8_count(columns: Iterable[tuple[str, str]]) -> str:
    """How many string values of the row are not valid UTF-8 (each is written with U+FFFD)."""
    terms = []
    for name, ch_type in columns:
        q = f"`{name}`"
        if ch_type.startswith("Map("):
            values = f" + arrayCount(x -> NOT isValidUTF8(x), mapValues({q}))" if map_value_type(ch_type) == "String" else ""
            terms.append(f"arrayCount(x -> NOT isValidUTF8(x), mapKeys({q})){values}")
        elif ch_type == "Array(String)":
            terms.append(f"arrayCount(x -> NOT isValidUTF8(x), {q})")
        elif "String" in ch_type:
            terms.append(f"(NOT isValidUTF8(ifNull({q}, '')))")
    return "toUInt32(" + " + ".join(terms) + ")"


def cleaned(columns: Iterable[tuple[str, str]]) -> str:
    """The columns as they are written: valid UTF-8, same names."""
    out = []
    for name, ch_type in columns:
        expr = valid_utf8(name, ch_type)
        out.append(f"{expr} AS `{name}`" if expr else f"`{name}`")
    return ",\n        ".join(out)


def json_line(columns: Iterable[tuple[str, str]], tombstone_columns: Iterable[str]) -> str:
    """The record's JSON line; a tombstone's line nulls all content (prompts, outputs, user ids).
    Only the branch a row needs is formatted (`if` evaluates its branches short-circuit)."""
    keep = set(tombstone_columns)
    names = [name for name, _ in columns]

    def field(name: str, tombstone: bool) -> str:
        if name == "is_deleted":
            return "toBool(`is_deleted`) AS `is_deleted`"
        return f"NULL AS `{name}`" if tombstone and name not in keep else f"`{name}`"

    live = ", ".join(field(n, False) for n in names)
    dead = ", ".join(field(n, True) for n in names)
    return f"if(`is_deleted`, formatRow('JSONEachRow', {dead}), formatRow('JSONEachRow', {live}))"


def typed_columns(columns: Iterable[tuple[str, str]]) -> str:
    """The record's columns for a Parquet file: `is_deleted` as a boolean, NaN and infinities as
    null (as in JSON), and the row's size. Tombstones are nulled on the Arrow side: a Map or an
    Array cannot be Nullable in ClickHouse."""
    out = []
    names = []
    for name, ch_type in columns:
        q = f"`{name}`"
        names.append(q)
        if name == "is_deleted":
            out.append(f"toBool({q}) AS {q}")
        elif ch_type in ("Float64", "Float32", "Nullable(Float64)", "Nullable(Float32)"):
            out.append(f"if(isFinite({q}), {q}, NULL) AS {q}")
        else:
            out.append(q)
    return f"byteSize({', '.join(names)}) AS _row_bytes, " + ", ".join(out)


def payload(shape: Shape, columns: Sequence[tuple[str, str]], tombstone_columns: Iterable[str]) -> tuple[str, str]:
    """(expressions, the names they give): what a query of `shape` returns after its meta columns."""
    if shape == "lines":
        return f"{json_line(columns, tombstone_columns)} AS _line", "_line"
    return typed_columns(columns), ", ".join(["_row_bytes", *(f"`{name}`" for name, _ in columns)])
