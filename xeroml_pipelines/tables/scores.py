"""The scores table: each score's latest version."""

from xeroml_pipelines.sql.source_tables import SCORES
from xeroml_pipelines.tables.records import records_table

TABLE = records_table(SCORES, "Score", "Latest version of each score, one record each.")
