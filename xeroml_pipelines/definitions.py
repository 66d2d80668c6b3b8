"""The code location's entry point (workspace.yaml, `xeroml ui`, `dg dev`): built when Dagster
loads it, not when this module is imported. Its component is `XEROML_CONFIG`'s file or, without
one, the embedded defaults' defs.yaml (defs/embedded/defs.yaml).

Not `dg.load_from_defs_folder`: it imports every installed package's component types (the cloud
SDKs of dagster-aws, -gcp and -azure among them) into every process that loads the location,
seconds of start-up for a local export that uses none of them."""

import dagster as dg

from xeroml_pipelines.component import XeroML
from xeroml_pipelines.config import load_config


@dg.definitions
def defs() -> dg.Definitions:
    return dg.build_defs_for_component(XeroML(load_config()))
