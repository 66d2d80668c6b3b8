"""The exports a deployment runs, declared in YAML (see `loading.py`), as typed models that
build their Dagster resources."""

from xeroml_pipelines.config.base import ConfigError
from xeroml_pipelines.config.exports import ExportConfig, XeroMLConfig
from xeroml_pipelines.config.loading import (
    CONFIG_ENV,
    DEMO_START,
    default_config,
    demo_days,
    load_config,
    parse_config,
    record_demo_days,
)

__all__ = [
    "CONFIG_ENV",
    "DEMO_START",
    "ConfigError",
    "ExportConfig",
    "XeroMLConfig",
    "default_config",
    "demo_days",
    "record_demo_days",
    "load_config",
    "parse_config",
]
