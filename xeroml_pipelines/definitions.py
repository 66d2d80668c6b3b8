"""The code location's entry point (workspace.yaml, `dagster dev`): built from the configuration
when Dagster loads it, not when this module is imported."""

import dagster as dg

from xeroml_pipelines.config import load_config
from xeroml_pipelines.defs.location import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_config())
