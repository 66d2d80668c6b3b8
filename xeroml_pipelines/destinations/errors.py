"""One classification of object-store failures for every provider: permanent or transient, with
the bucket or container and the cause named, never a secret.

Each provider turns its SDK's exception into a `Refusal` (the service answered: an error code
and an HTTP status) or calls `unreachable` (no answer); the decision is made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xeroml_pipelines.errors import ExportError

# Statuses a retry cannot change: the request itself, the credentials or the target are wrong.
# 408 (RequestTimeout), 429 (throttling) and 5xx are the service's own trouble.
REFUSED_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 411, 412})


class DestinationError(ExportError):
    """A provider failure, told in our words (see `ExportError`)."""


@dataclass(frozen=True)
class Service:
    """What a provider's errors are called: its name in messages and its permanent error codes."""

    name: str
    causes: Mapping[str, str] = field(default_factory=dict)  # error code -> the cause, in our words

    def refused(self, where: str, code: str | None, status: int | None) -> DestinationError:
        """The service answered with an error: permanent when the code or status says a retry
        cannot help, else throttling or an outage whose retries are spent."""
        label = code or f"HTTP {status}"
        cause = self.causes.get(code) if code else None
        if cause:
            return DestinationError(f"{where}: {cause} [{label}]", permanent=True)
        if status in REFUSED_STATUSES and code != "RequestTimeout":
            return DestinationError(f"{where}: request refused [{label}]", permanent=True)
        return DestinationError(
            f"{where}: {self.name} is throttling or unavailable [{label}], retries exhausted", permanent=False
        )

    def unreachable(self, where: str, error: BaseException, retried: str = "retries exhausted") -> DestinationError:
        """No answer at all (connection refused or lost, DNS, TLS, timeouts): transient."""
        return DestinationError(f"{where}: cannot reach {self.name} ({type(error).__name__}), {retried}", permanent=False)

    def bad_credentials(self, where: str, detail: str) -> DestinationError:
        return DestinationError(f"{where}: {detail}", permanent=True)
