"""The observations table: each observation's latest version, with its latency and time to
first token."""

from xeroml_pipelines.sql.source_tables import OBSERVATIONS
from xeroml_pipelines.tables.records import records_table
from xeroml_pipelines.tables.spec import Computed

# In milliseconds; null when the later time is missing.
METRICS = (
    Computed(
        "latency_ms",
        "Nullable(Int64)",
        "toUnixTimestamp64Milli(`end_time`) - toUnixTimestamp64Milli(`start_time`)",
        "end_time - start_time in milliseconds; null without end_time",
    ),
    Computed(
        "time_to_first_token_ms",
        "Nullable(Int64)",
        "toUnixTimestamp64Milli(`completion_start_time`) - toUnixTimestamp64Milli(`start_time`)",
        "completion_start_time - start_time in milliseconds; null without completion_start_time",
    ),
)

TABLE = records_table(
    OBSERVATIONS,
    "Observation",
    "Latest version of each observation (span, generation, event), one record each.",
    computed=METRICS,
)
