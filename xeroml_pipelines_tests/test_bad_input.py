"""Hostile stored values, table-driven: every line parses, the file is UTF-8, every value comes
back as stored, or with U+FFFD where the stored bytes were not UTF-8 (and counted)."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.sql.source_tables import SOURCES
from xeroml_pipelines_tests.factories import insert, observation, score, trace
from xeroml_pipelines_tests.support import Exporter, read_bytes

DAY = "2025-01-15"
AT = "2025-01-15 10:00"
TEN_MB = "x" * (10 * 1024 * 1024 - 7) + "\u00e9\U0001f680"


@dataclass(frozen=True)
class Case:
    name: str
    table: str
    stored: dict[str, Any]  # the columns this case sets
    expected: dict[str, Any] = field(default_factory=dict)  # JSON values that differ from `stored`
    invalid_utf8: int = 0  # values written with U+FFFD

    @property
    def id(self) -> str:
        return f"bad-{self.name}"


NULL_TRACE = dict.fromkeys(("user_id", "release", "version", "input", "output", "session_id"))
NULL_OBSERVATION = dict.fromkeys(
    (
        "parent_observation_id",
        "end_time",
        "status_message",
        "version",
        "input",
        "output",
        "provided_model_name",
        "internal_model_id",
        "model_parameters",
        "total_cost",
        "completion_start_time",
        "prompt_id",
        "prompt_name",
        "prompt_version",
    )
)
NULL_SCORE = dict.fromkeys(
    (
        "trace_id",
        "session_id",
        "dataset_run_id",
        "observation_id",
        "comment",
        "author_user_id",
        "config_id",
        "string_value",
        "queue_id",
    )
)

CASES = [
    # strings that are not UTF-8
    Case("invalid-utf8-bytes", "traces", {"input": b"ab\xff\xfecd"}, {"input": "ab\ufffdcd"}, 1),
    Case("lone-surrogate-cesu", "traces", {"input": b"x\xed\xa0\x80y"}, {}, 1),
    Case("overlong-slash", "traces", {"output": b"\xc0\xaf"}, {}, 1),
    Case("truncated-multibyte", "traces", {"name": b"abc\xe2\x82"}, {"name": "abc\ufffd"}, 1),
    Case("invalid-user-id", "traces", {"user_id": b"\x80user"}, {"user_id": "\ufffduser"}, 1),
    Case("invalid-map-key", "traces", {"metadata": {b"k\xff": "v"}}, {"metadata": {"k\ufffd": "v"}}, 1),
    Case("invalid-map-value", "traces", {"metadata": {"k": b"\xfe"}}, {"metadata": {"k": "\ufffd"}}, 1),
    Case("invalid-tag", "traces", {"tags": [b"\x80", "ok"]}, {"tags": ["\ufffd", "ok"]}, 1),
    Case(
        "invalid-everywhere",
        "traces",
        {"input": b"\xff", "output": b"\xff", "metadata": {b"\xff": b"\xff"}},
        {"input": "\ufffd", "output": "\ufffd", "metadata": {"\ufffd": "\ufffd"}},
        4,
    ),
    # control characters and separators survive as escapes
    Case("nul", "traces", {"input": "a\x00b"}),
    Case("c0-controls", "traces", {"input": "".join(chr(i) for i in range(32))}),
    Case("del-and-c1", "traces", {"input": "\x7f\u0080\u009f"}),
    Case("line-separators", "traces", {"input": "\u2028\u2029"}),
    Case("crlf", "traces", {"output": "line1\r\nline2\n"}),
    Case("quotes-backslashes", "traces", {"input": '"\'\\/\\\\""'}),
    Case("html", "traces", {"output": "</script><script>alert(1)</script>"}),
    # strings that look like something else stay strings
    Case("json-object-string", "traces", {"input": '{"a": [1, 2], "b": null}'}),
    Case("json-array-string", "traces", {"output": "[1,2,3]"}),
    Case("json-number-string", "traces", {"input": "1e309"}),
    Case("json-null-string", "traces", {"input": "null"}),
    # unicode
    Case(
        "emoji-zwj", "traces", {"input": "\U0001f680\U0001f469\u200d\U0001f469\u200d\U0001f467\U0001f3f3\ufe0f\u200d\U0001f308"}
    ),
    Case("rtl-and-override", "traces", {"input": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eevil"}),
    Case("cjk", "traces", {"output": "\u6570\u636e\u5206\u6790"}),
    Case("bom", "traces", {"input": "\ufeffbom"}),
    Case("unicode-id", "traces", {"id": "bad-\u0442\u0440\u0430\u0441\u0441\u0430-\U0001f680"}),
    Case("id-with-quotes", "traces", {"id": 'bad-a"b/c\\d'}),
    # empty vs NULL, sizes
    Case("empty-strings", "traces", {"input": "", "output": "", "session_id": "", "user_id": ""}),
    Case("all-nullable-null-trace", "traces", NULL_TRACE),
    Case("ten-mb-input", "traces", {"input": TEN_MB}),
    Case("ten-thousand-tags", "traces", {"tags": [f"t{i}" for i in range(10_000)]}),
    Case("empty-tags-and-map", "traces", {"tags": [], "metadata": {}}),
    # map keys
    Case("map-key-quotes", "traces", {"metadata": {'k"ey': 'v"al', "k'2": "v"}}),
    Case("map-key-dots", "traces", {"metadata": {"a.b.c": "1", "$.x": "2"}}),
    Case(
        "map-key-unicode",
        "traces",
        {"metadata": {"\u043a\u043b\u044e\u0447\U0001f680": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"}},
    ),
    Case("map-key-empty", "traces", {"metadata": {"": ""}}),
    # extreme times: the record's own time, exported in the partition of its event_ts
    Case("timestamp-1970", "traces", {"timestamp": "1970-01-01 00:00:00"}, {"timestamp": "1970-01-01T00:00:00.000Z"}),
    Case("timestamp-2299", "traces", {"timestamp": "2299-12-31 23:59:59.999"}, {"timestamp": "2299-12-31T23:59:59.999Z"}),
    Case("millisecond-precision", "traces", {"timestamp": "2025-01-15 10:00:00.007"}, {"timestamp": "2025-01-15T10:00:00.007Z"}),
    # observations: numbers at their limits
    Case("all-nullable-null-observation", "observations", NULL_OBSERVATION),
    Case("uint64-max-usage", "observations", {"usage_details": {"input": 2**64 - 1, "output": 0}}),
    Case(
        "tiny-and-large-costs",
        "observations",
        {"total_cost": Decimal("0.000000000001"), "cost_details": {"input": Decimal("123456.123456789012")}},
        {"total_cost": 1e-12, "cost_details": {"input": 123456.123456789012}},
    ),
    Case("prompt-version-max", "observations", {"prompt_version": 65535}),
    Case(
        "completion-before-start",
        "observations",
        {"completion_start_time": "1970-01-01 00:00:00.001"},
        {"completion_start_time": "1970-01-01T00:00:00.001Z"},
    ),
    # scores: floats JSON can and cannot hold
    Case("score-max-float", "scores", {"value": 1.7976931348623157e308}),
    Case("score-subnormal", "scores", {"value": 5e-324}),
    Case("score-negative-zero", "scores", {"value": -0.0}),
    Case("score-nan", "scores", {"value": math.nan}, {"value": None}),  # JSON has no NaN: null (README)
    Case("score-inf", "scores", {"value": math.inf}, {"value": None}),
    Case("score-minus-inf", "scores", {"value": -math.inf}, {"value": None}),
    Case("all-nullable-null-score", "scores", NULL_SCORE),
    Case("categorical-unicode", "scores", {"data_type": "CATEGORICAL", "string_value": "\u2705 gut"}),
]

FACTORIES = {"traces": trace, "observations": observation, "scores": score}
TIME_FIELDS = {"completion_start_time"}  # `timestamp` the factories parse themselves


def _row(case: Case) -> dict[str, Any]:
    from xeroml_pipelines_tests.factories import ts

    stored = {k: (ts(v) if k in TIME_FIELDS and isinstance(v, str) else v) for k, v in case.stored.items()}
    stored.setdefault("id", case.id)
    if case.table == "observations":
        return observation(stored.pop("id"), "t1", AT, **stored)
    return FACTORIES[case.table](stored.pop("id"), AT, **stored)


def _literal(value: Any) -> str:
    """A ClickHouse literal for any stored value; strings as hex, so any bytes can be stored."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes) and len(value) > 65_536:
        # the 10 MB value: its leading run as repeat(), so the statement stays small
        rest = value.lstrip(value[:1])
        kib, single = divmod(len(value) - len(rest), 1024)
        c = f"unhex('{value[:1].hex()}')"
        return f"concat(repeat(repeat({c}, 1024), {kib}), repeat({c}, {single}), unhex('{rest.hex()}'))"
    if isinstance(value, bytes):
        return f"unhex('{value.hex()}')"
    if isinstance(value, Decimal):
        return f"toDecimal64('{value}', 12)"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"toDateTime64('{value:%Y-%m-%d %H:%M:%S.%f}', 3, 'UTC')"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map(" + ", ".join(f"{_literal(k)}, {_literal(v)}" for k, v in value.items()) + ")" if value else "map()"
    raise TypeError(type(value))


def _insert(ch: ClickHouseResource, table: str, rows: list[dict[str, Any]]) -> None:
    names = [c.name for c in SOURCES[table].columns]
    for row in rows:
        values = ", ".join(_literal(row[n]) for n in names)
        ch.get_client().command(f"INSERT INTO `{ch.database}`.`{table}` ({', '.join(names)}) SELECT {values}")


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def exported(chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Exporter:
    ch = ClickHouseResource(url=chdb_url, database=f"bad_{uuid.uuid4().hex[:12]}")
    ch.create_schema()
    for table in FACTORIES:
        _insert(ch, table, [_row(c) for c in CASES if c.table == table])
    # the same ids in another project, with content that must not appear in p1's files
    insert(ch, "traces", [trace(c.id, AT, project_id="p2", input="OTHER-TENANT") for c in CASES if c.table == "traces"])
    exporter = Exporter(ch, tmp_path_factory.mktemp("bad") / "export", project_id="p1")
    exporter.run(DAY, tables=("traces", "observations", "scores"))
    yield exporter
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("table", list(FACTORIES))
def test_files_are_utf8_one_json_object_per_line(exported: Exporter, table: str) -> None:
    raw = read_bytes(exported.path(table, DAY))
    text = raw.decode("utf-8")  # strict: raises on anything that is not UTF-8
    lines = text.split("\n")
    assert lines[-1] == "" and all(lines[:-1])
    records = [json.loads(line) for line in lines[:-1]]  # strict JSON: no NaN/Infinity literals
    assert all(isinstance(r, dict) for r in records)
    expected_ids = {c.stored.get("id", c.id) for c in CASES if c.table == table}
    assert {r["id"] for r in records} == expected_ids, "one line per record, no other tenant's"
    manifest = exported.manifest(table, DAY)
    assert manifest["rows"] == len(records)
    assert manifest["invalid_utf8"] == sum(c.invalid_utf8 for c in CASES if c.table == table)
    assert b"OTHER-TENANT" not in raw


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_value_round_trips(exported: Exporter, case: Case) -> None:
    (line,) = [r for r in exported.lines(case.table, DAY) if r["id"] == case.stored.get("id", case.id)]
    for name, value in case.stored.items():
        got = line[name]
        if name in case.expected:
            assert got == case.expected[name], (name, got)
        elif isinstance(value, bytes) or (
            isinstance(value, dict) and any(isinstance(x, bytes) for kv in value.items() for x in kv)
        ):
            # not UTF-8: each bad sequence is U+FFFD, the valid parts are kept, no surrogates
            assert "\ufffd" in json.dumps(got, ensure_ascii=False) and "\\ud" not in json.dumps(got), (name, got)
        elif isinstance(value, float):
            assert got == value and type(got) in (int, float), (name, got)  # -0.0 is written -0
        else:
            assert got == _json(value), (name, got if not isinstance(got, str) or len(got) < 200 else len(got))
