"""What every configuration model shares: unknown fields are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from xeroml_pipelines.errors import ConfigError

__all__ = ["ConfigError", "Strict"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
