"""A secret is never in the configuration: a `<name>_env` setting names the environment variable
that holds it, and the resource reads the variable when it opens a client. Dagster's UI and run
storage see the variable's name, never its value."""

from __future__ import annotations

import os

from xeroml_pipelines.errors import MissingSecret


def from_env(variable: str | None, setting: str) -> str | None:
    """The secret in `variable` (None when no variable is named); an unset or empty variable is
    `MissingSecret`, naming the `setting` that names it."""
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise MissingSecret(f"{setting}: the environment variable {variable} is unset or empty")
    return value
