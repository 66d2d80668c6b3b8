"""ClickHouse failures told in our words, and which of them a retry cannot fix."""

from __future__ import annotations

import re

from xeroml_pipelines.errors import ExportError


class ClickHouseError(ExportError):
    """ClickHouse refused a query (permanent) or a result stream broke off (transient)."""


class EmbeddedEngineBusy(RuntimeError):
    """Another process holds the embedded engine's folder for longer than we wait."""


# ClickHouse error codes a retry cannot fix: credentials, grants, missing database/table/column,
# bad SQL, a read-only user. Everything else (network, memory limits, timeouts) may pass.
_PERMANENT_CODES = {
    516,  # AUTHENTICATION_FAILED
    192,  # UNKNOWN_USER
    193,  # WRONG_PASSWORD
    194,  # REQUIRED_PASSWORD
    497,  # ACCESS_DENIED
    81,  # UNKNOWN_DATABASE
    60,  # UNKNOWN_TABLE
    47,  # UNKNOWN_IDENTIFIER
    62,  # SYNTAX_ERROR
    164,  # READONLY
}
_CODE = re.compile(r"\bCode:\s*(\d+)")


# ClickHouse quotes the whole analysed query after "In scope": hundreds of columns, kept for the
# log (--verbose), not for the one line a user reads
_IN_SCOPE = re.compile(r"\s*In scope .*?(?=\s*\([A-Z_]+\)\s*$)|\s*In scope .*$", re.S)
_NOT_THERE = (60, 81)  # UNKNOWN_TABLE, UNKNOWN_DATABASE


def _code(error: BaseException) -> int | None:
    """Over HTTP clickhouse-connect reports the server's code; chDB only has it in the message."""
    code = getattr(error, "code", None)
    if code is None and (match := _CODE.search(str(error))):
        code = int(match.group(1))
    return code if isinstance(code, int) else None


def is_permanent(error: BaseException) -> bool:
    """Whether a ClickHouse error is one a retry cannot fix (see `_PERMANENT_CODES`)."""
    return _code(error) in _PERMANENT_CODES


_REASONS = (
    (re.compile(r"Connection refused", re.I), "connection refused: nothing listens on that port"),
    (re.compile(r"timed out|timeout", re.I), "no answer before the timeout"),
    (re.compile(r"Name or service not known|nodename nor servname|getaddrinfo failed|NameResolution", re.I), "unknown host name"),
    (re.compile(r"Network is unreachable|No route to host", re.I), "no route to the host"),
    (re.compile(r"SSL|certificate", re.I), "the TLS handshake failed"),
    (re.compile(r"Connection reset|RemoteDisconnected|Connection aborted", re.I), "the connection was closed"),
)


def unreachable(where: str, error: BaseException, attempts: int, seconds: float) -> ClickHouseError:
    """No answer from the server after every connection attempt: the run stops here (its step
    is not retried again, so an unreachable server is reported within seconds, not minutes)."""
    text = str(error)
    reason = next((why for pattern, why in _REASONS if pattern.search(text)), type(error).__name__)
    return ClickHouseError(
        f"cannot reach ClickHouse at {where}: {reason} ({attempts} attempts in {seconds:.0f} s). "
        "Check clickhouse.url, the network, and that the server runs; nothing was published.",
        permanent=True,
    )


def engine_locked(e: BaseException) -> bool:
    text = str(e)
    return "Cannot lock file" in text or "Another server instance" in text or "Error initializing EmbeddedServer" in text


def read_failure(what: str, error: BaseException, rows: int | None) -> ClickHouseError:
    """A failed read of `what` (`rows`: how many arrived before it broke off, None if the query
    never started), as the message a user sees."""
    cause = f"{type(error).__name__}: {error}"
    if is_permanent(error):
        fix = "Fix the ClickHouse settings (credentials, grants, database) and re-run"
        if _code(error) in _NOT_THERE:
            fix = (
                "XeroML's tables are not in that database: on the embedded defaults run `xeroml demo` first "
                "(it creates and seeds them), else check clickhouse.url and clickhouse.database"
            )
        return ClickHouseError(
            f"ClickHouse refused to read {what}: {_IN_SCOPE.sub('', cause)}. {fix}; nothing was published.",
            permanent=True,
        )
    if rows is not None:
        return ClickHouseError(
            f"ClickHouse stopped sending {what} after {rows} rows: {cause}. "
            "Nothing of these partitions was published; a retry reads them again whole.",
            permanent=False,
        )
    return ClickHouseError(f"ClickHouse could not be queried for {what}: {cause}", permanent=False)
