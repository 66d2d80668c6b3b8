"""Realistic XeroML demo data, generated inside ClickHouse (no Python loop per row).

Three projects (`demo` and two other tenants whose rows must never leak into demo's export),
sessions of multi-turn traces (session ids reused across projects on purpose), nested
observations (span -> generation -> event), scores, and the ingestion patterns an incremental
export must get right: updates ingested hours later (often on a later day), late arrivals
(old timestamp, event_ts days later) and deletes (a tombstone version of a trace, its
observations and scores).

Every value comes from `cityHash64(seed, ...)`, so the same arguments give the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from string import Template

from xeroml_pipelines.clickhouse.resource import ClickHouseResource

PROJECTS = ("demo", "acme", "globex")

_WORDS = (
    "the model retrieved three documents about quarterly revenue and summarized the key risks "
    "for the customer support team while keeping latency under budget café naïve 数据 🚀 שלום "
    "tool call returned a cached embedding vector for the prompt template version"
).split()

_TEXT = (
    "arrayStringConcat(arrayMap(k -> words[1 + cityHash64($seed, '$salt', number, k) % length(words)], "
    "range($min + cityHash64($seed, '$salt', number) % $spread)), ' ')"
)


def _text(salt: str, min_words: int, spread: int) -> str:
    return Template(_TEXT).safe_substitute(salt=salt, min=min_words, spread=spread)


_TRACES_V1 = """
INSERT INTO $db.traces (id, timestamp, name, user_id, metadata, release, version, project_id, environment,
    public, bookmarked, tags, input, output, session_id, created_at, updated_at, event_ts, is_deleted)
SELECT
    concat('trace-', lower(hex(cityHash64($seed, 'trace', number)))),
    ts,
    ['chat', 'rag-query', 'agent-run', 'summarize'][1 + h1 % 4],
    if(h2 % 20 = 0, NULL, concat('user-', toString(h2 % 250))),
    map('region', ['eu-west', 'us-east', 'ap-south'][1 + h3 % 3], 'client', ['web', 'ios', 'android'][1 + intDiv(h3, 3) % 3]),
    concat('v1.', toString(day % 3)),
    if(h4 % 4 = 0, NULL, concat('2025.01.', toString(1 + h4 % 9))),
    project,
    multiIf(h5 % 100 < 80, 'production', h5 % 100 < 95, 'staging', 'development'),
    false,
    h6 % 50 = 0,
    arrayFilter(t -> t != '', [if(h6 % 3 = 0, 'beta', ''), if(h6 % 7 = 0, 'vip', ''), if(h6 % 11 = 0, 'experiment-a', '')]),
    concat('{"messages":[{"role":"user","content":"', question, '"}]}'),
    if(h7 % 10 = 0, NULL, concat('{"role":"assistant","content":"', answer, '"}')),
    if(h1 % 100 < 15, NULL, concat('session-', toString(session))),
    ts,
    ingested,
    ingested,
    0
FROM (
    SELECT
        number,
        $words AS words,
        [$projects][1 + number % $n_projects] AS project,
        intDiv(number, $n_projects) AS i,
        intDiv(i, $per_day) AS day,
        intDiv(i, 4) AS session,
        i % 4 AS turn,
        cityHash64($seed, 'h1', number) AS h1, cityHash64($seed, 'h2', number) AS h2,
        cityHash64($seed, 'h3', number) AS h3, cityHash64($seed, 'h4', number) AS h4,
        cityHash64($seed, 'h5', number) AS h5, cityHash64($seed, 'h6', number) AS h6,
        cityHash64($seed, 'h7', number) AS h7, cityHash64($seed, 'h8', number) AS h8,
        addMilliseconds(toDateTime64('$start', 3, 'UTC'),
            day * 86400000 + cityHash64($seed, 'session', project, session) % 80000000
            + turn * (30000 + cityHash64($seed, 'gap', number) % 90000)) AS ts,
        -- 3% arrive late: one to three days after their timestamp
        addMilliseconds(ts, if(h8 % 100 < 3, 86400000 + h8 % 172800000, 200 + h8 % 4800)) AS ingested,
        $question AS question,
        $answer AS answer
    FROM numbers($n)
)
"""

_OBSERVATIONS_V1 = """
INSERT INTO $db.observations (id, trace_id, project_id, environment, type, parent_observation_id, start_time, end_time,
    name, metadata, level, status_message, version, input, output, provided_model_name, internal_model_id,
    model_parameters, provided_usage_details, usage_details, provided_cost_details, cost_details, total_cost,
    completion_start_time, prompt_id, prompt_name, prompt_version, created_at, updated_at, event_ts, is_deleted)
SELECT
    concat('obs-', lower(hex(cityHash64($seed, 'obs', trace_id, slot)))) AS id,
    trace_id, project_id, environment, type,
    multiIf(slot = 0, NULL,
            slot = 2, concat('obs-', lower(hex(cityHash64($seed, 'obs', trace_id, 1)))),
            concat('obs-', lower(hex(cityHash64($seed, 'obs', trace_id, 0))))),
    start_time,
    if(type = 'EVENT', NULL, addMilliseconds(start_time, 300 + h % 6000)),
    ['pipeline', 'llm-call', 'cache-lookup', 'llm-final', 'tool-call'][slot + 1],
    map('step', toString(slot)),
    level,
    if(level = 'ERROR', 'upstream timeout after 30s', NULL),
    version,
    if(gen, input, NULL),
    if(gen, output, NULL),
    if(gen, model, NULL),
    if(gen, concat('model-', model), NULL),
    if(gen, '{"temperature":0.7,"max_tokens":1024}', NULL),
    mapFilter((k, v) -> gen, map('input', in_tok, 'output', out_tok)),
    mapFilter((k, v) -> gen, map('input', in_tok, 'output', out_tok, 'total', in_tok + out_tok)),
    mapFilter((k, v) -> gen AND slot = 3, map('total', toDecimal64(in_tok * 0.000003 + out_tok * 0.000012, 12))),
    mapFilter((k, v) -> gen, map('input', toDecimal64(in_tok * 0.0000025, 12), 'output', toDecimal64(out_tok * 0.00001, 12),
                                 'total', toDecimal64(in_tok * 0.0000025 + out_tok * 0.00001, 12))),
    if(gen, toDecimal64(in_tok * 0.0000025 + out_tok * 0.00001, 12), NULL),
    if(gen, addMilliseconds(start_time, 200 + h % 800), NULL),
    if(slot = 3, 'prompt-qa', NULL),
    if(slot = 3, 'qa-answer', NULL),
    if(slot = 3, toUInt16(1 + h % 3), NULL),
    start_time,
    ingested,
    ingested,
    0
FROM (
    SELECT
        t.id AS trace_id, t.project_id AS project_id, t.environment AS environment, t.version AS version,
        t.input AS input, t.output AS output, slot,
        ['SPAN', 'GENERATION', 'EVENT', 'GENERATION', 'SPAN'][slot + 1] AS type,
        type = 'GENERATION' AS gen,
        cityHash64($seed, 'obsh', t.id, slot) AS h,
        ['gpt-4o', 'claude-3-5-sonnet', 'gpt-4o-mini'][1 + h % 3] AS model,
        toUInt64(50 + h % 4000) AS in_tok,
        toUInt64(10 + intDiv(h, 7) % 800) AS out_tok,
        multiIf(h % 50 = 0, 'ERROR', h % 20 = 0, 'WARNING', 'DEFAULT') AS level,
        addMilliseconds(t.timestamp, slot * 150) AS start_time,
        addMilliseconds(t.event_ts, slot * 100) AS ingested
    FROM $db.traces AS t ARRAY JOIN range(5) AS slot
    WHERE t.project_id IN ($projects) AND (slot < 4 OR cityHash64($seed, 'tool', t.id) % 2 = 0)
)
"""

_SCORES_V1 = """
INSERT INTO $db.scores (id, timestamp, project_id, environment, trace_id, session_id, dataset_run_id, observation_id,
    name, value, source, comment, metadata, author_user_id, config_id, data_type, string_value, queue_id,
    created_at, updated_at, event_ts, is_deleted)
SELECT
    concat('score-', lower(hex(cityHash64($seed, 'score', trace_id, k)))),
    ts, project_id, environment, trace_id, session_id, NULL,
    if(k = 1 AND h % 2 = 0, concat('obs-', lower(hex(cityHash64($seed, 'obs', trace_id, 1)))), NULL),
    ['quality', 'user-feedback'][k + 1],
    value,
    ['EVAL', 'API'][k + 1],
    if(h % 7 = 0, 'checked against the reference answer', NULL),
    map('evaluator', ['llm-judge', 'human'][k + 1]),
    if(k = 1, user_id, NULL),
    NULL,
    ['NUMERIC', 'CATEGORICAL'][k + 1],
    if(k = 1, if(value = 1, 'thumbs-up', 'thumbs-down'), NULL),
    NULL,
    ts, ingested, ingested, 0
FROM (
    SELECT t.id AS trace_id, t.project_id AS project_id, t.environment AS environment, t.session_id AS session_id,
        t.user_id AS user_id, k,
        cityHash64($seed, 'scoreh', t.id, k) AS h,
        if(k = 0, (h % 1000) / 1000, if(h % 4 = 0, 0, 1)) AS value,
        addMilliseconds(t.timestamp, 5000 + h % 60000) AS ts,
        addMilliseconds(t.event_ts, 5000 + h % 600000) AS ingested
    FROM $db.traces AS t ARRAY JOIN [0, 1] AS k
    WHERE t.project_id IN ($projects)
      AND ((k = 0 AND cityHash64($seed, 'q', t.id) % 3 = 0) OR (k = 1 AND cityHash64($seed, 'f', t.id) % 5 = 0))
)
"""

# Updates: a new version ingested 1 to 31 hours later (often on a later day).
_TRACE_UPDATES = """
INSERT INTO $db.traces
SELECT * REPLACE (
    concat('{"role":"assistant","content":"(revised) ', id, '"}') AS output,
    arrayPushBack(tags, 'reviewed') AS tags,
    true AS bookmarked,
    addMilliseconds(event_ts, 3600000 + cityHash64($seed, 'tupd', id) % 108000000) AS updated_at,
    addMilliseconds(event_ts, 3600000 + cityHash64($seed, 'tupd', id) % 108000000) AS event_ts)
FROM $db.traces
WHERE project_id IN ($projects) AND cityHash64($seed, 'tsel', id) % 10 = 0
"""

_OBSERVATION_UPDATES = """
INSERT INTO $db.observations
SELECT * REPLACE (
    addMilliseconds(start_time, 9000 + cityHash64($seed, 'oend', id) % 20000) AS end_time,
    'updated by a later ingestion' AS status_message,
    addMilliseconds(event_ts, 1800000 + cityHash64($seed, 'oupd', id) % 93600000) AS updated_at,
    addMilliseconds(event_ts, 1800000 + cityHash64($seed, 'oupd', id) % 93600000) AS event_ts)
FROM $db.observations
WHERE project_id IN ($projects) AND type = 'GENERATION' AND cityHash64($seed, 'osel', id) % 8 = 0
"""

# Deletes: a tombstone version (is_deleted = 1) after the latest version of 1% of the traces,
# cascading to their observations and scores, as XeroML does.
_TRACE_DELETES = """
INSERT INTO $db.traces
SELECT * REPLACE (
    1 AS is_deleted,
    addMilliseconds(event_ts, 86400000 + cityHash64($seed, 'tdel', id) % 86400000) AS updated_at,
    addMilliseconds(event_ts, 86400000 + cityHash64($seed, 'tdel', id) % 86400000) AS event_ts)
FROM $db.traces
WHERE project_id IN ($projects) AND cityHash64($seed, 'tdsel', id) % 100 = 1
ORDER BY id, event_ts DESC
LIMIT 1 BY id
"""

_CASCADE_DELETES = """
INSERT INTO $db.$table
SELECT * REPLACE (
    1 AS is_deleted,
    addMilliseconds(event_ts, 86400000 + cityHash64($seed, 'cdel', id) % 86400000) AS updated_at,
    addMilliseconds(event_ts, 86400000 + cityHash64($seed, 'cdel', id) % 86400000) AS event_ts)
FROM $db.$table
WHERE project_id IN ($projects)
  AND (project_id, trace_id) IN (SELECT project_id, id FROM $db.traces WHERE is_deleted = 1)
ORDER BY id, event_ts DESC
LIMIT 1 BY id
"""


@dataclass(frozen=True)
class DemoSpec:
    start: date
    days: int
    traces_per_day: int  # per project
    seed: int = 42
    projects: tuple[str, ...] = PROJECTS
    # Multiplies the words of prompts and completions: 1 gives ~1.3 KB per observation on
    # average, 4 about 3 KB, the size of a large production project's observations.
    text_scale: int = 1

    def statements(self, database: str) -> list[str]:
        values = {
            "db": f"`{database}`",
            "seed": str(int(self.seed)),
            "start": self.start.isoformat(),
            "per_day": str(int(self.traces_per_day)),
            "n": str(int(self.days) * int(self.traces_per_day) * len(self.projects)),
            "n_projects": str(len(self.projects)),
            "projects": ", ".join(f"'{p}'" for p in self.projects),
            "words": "[" + ", ".join(f"'{w}'" for w in _WORDS) + "]",
            "question": _text("q", 10 * int(self.text_scale), 60 * int(self.text_scale)),
            "answer": _text("a", 30 * int(self.text_scale), 200 * int(self.text_scale)),
        }

        def sql(template: str, **extra: str) -> str:
            # Two passes: the text snippets themselves carry $seed.
            return Template(Template(template).safe_substitute(values, **extra)).substitute(values, **extra)

        return [
            sql(_TRACES_V1),
            sql(_OBSERVATIONS_V1),
            sql(_SCORES_V1),
            sql(_OBSERVATION_UPDATES),
            sql(_TRACE_UPDATES),
            sql(_TRACE_DELETES),
            sql(_CASCADE_DELETES, table="observations"),
            sql(_CASCADE_DELETES, table="scores"),
        ]


def generate(clickhouse: ClickHouseResource, spec: DemoSpec) -> None:
    """Create the schema and fill it. Appends: call it on an empty database (see `seed_if_empty`)."""
    clickhouse.create_schema()
    client = clickhouse.get_client()
    for statement in spec.statements(clickhouse.database):
        client.command(statement)


def seed_if_empty(clickhouse: ClickHouseResource, spec: DemoSpec) -> bool:
    clickhouse.create_schema()
    if clickhouse.scalar(f"SELECT count() FROM `{clickhouse.database}`.traces"):
        return False
    generate(clickhouse, spec)
    return True
