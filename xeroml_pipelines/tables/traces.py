"""The traces table: each trace's latest version."""

from xeroml_pipelines.sql.source_tables import TRACES
from xeroml_pipelines.tables.records import records_table

TABLE = records_table(TRACES, "Trace", "Latest version of each trace of the project, one record per trace.")
