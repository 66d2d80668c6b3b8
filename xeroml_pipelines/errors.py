"""The one failure type the export tells users about, whatever failed underneath."""

from __future__ import annotations


class ExportError(Exception):
    """A failure told in our words: what was being read or written, the cause, never a secret.

    `permanent` errors (a missing bucket, refused credentials, an unknown table) cannot be fixed
    by trying again: the run stops at once. Transient ones (throttling, 5xx, a lost connection)
    are left to the step's retry policy after the clients' own retries are spent.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class ConfigError(ValueError):
    """The configuration is invalid; the message names the source and each bad field."""


class MissingSecret(ExportError, ConfigError):
    """A secret's environment variable is unset or empty: a mistake in the configuration, and for
    a run a permanent failure (no retry sets the variable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
