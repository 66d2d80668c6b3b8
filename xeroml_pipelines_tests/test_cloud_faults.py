"""Object stores answering with errors, through an HTTP fault proxy in front of each emulator:
throttling and 5xx now and then are retried and the export comes out identical; a 5xx that does
not stop fails the run as transient (left to the step's retry policy) with the previous good
object intact; a permanent refusal (403) fails at once, without retries of any kind."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance

from xeroml_pipelines_tests.emulators import Fault, FaultProxy, azurite_connection_string, fake_gcs, free_port
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.providers import PREFIX
from xeroml_pipelines_tests.support import Exporter, make_provider

DAY = "2025-01-15"
DATA_KEY = f"{PREFIX}/traces/{DAY}.jsonl"
MANIFEST_KEY = f"{PREFIX}/_manifests/traces/{DAY}.json"


def _answer(name: str, status: int, code: str, message: str) -> tuple[int, bytes, dict[str, str]]:
    """An error response as the service sends it and its SDK parses it."""
    if name == "gcs":
        body = json.dumps({"error": {"code": status, "message": message, "errors": [{"reason": code}]}}).encode()
        return status, body, {"Content-Type": "application/json"}
    body = f"<?xml version='1.0' encoding='utf-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return status, body, {"Content-Type": "application/xml", **({"x-ms-error-code": code} if name == "azure" else {})}


THROTTLED = {
    "s3": _answer("s3", 503, "SlowDown", "Please reduce your request rate."),
    "gcs": _answer("gcs", 429, "rateLimitExceeded", "The rate of change requests to the object is too high."),
    "azure": _answer("azure", 503, "ServerBusy", "The server is busy."),
}
INTERNAL = {
    "s3": _answer("s3", 500, "InternalError", "We encountered an internal error."),
    "gcs": _answer("gcs", 503, "backendError", "Backend Error"),
    "azure": _answer("azure", 500, "InternalError", "The server encountered an internal error."),
}
FORBIDDEN = {
    "s3": _answer("s3", 403, "AccessDenied", "Access Denied"),
    "gcs": _answer("gcs", 403, "forbidden", "does not have storage.objects.create access"),
    "azure": _answer(
        "azure",
        403,
        "AuthorizationPermissionMismatch",
        "This request is not authorized to perform this operation using this permission.",
    ),
}


def _is_data_write(method: str, target: str) -> bool:
    """A request that writes the partition's data object (any upload step), not its manifest."""
    return method in ("PUT", "POST") and f"traces/{DAY}.jsonl" in target and "_manifests" not in target


def _through_proxy(name: str, request, tmp_path, monkeypatch):
    """The provider's emulator behind a fault proxy; returns (provider, proxy, destination)."""
    if name == "gcs":
        # fake-gcs-server hands out resumable-upload URLs on its public host: the proxy's
        proxy_port = free_port()
        server = fake_gcs(tmp_path, tmp_path / "gcs-data", public_port=proxy_port).start()
        request.addfinalizer(server.stop)
        provider = make_provider(name, request, tmp_path, endpoint=server.url)
        proxy = FaultProxy(server.port, port=proxy_port)
    else:
        server = request.getfixturevalue({"s3": "moto_server", "azure": "azurite_server"}[name])
        provider = make_provider(name, request, tmp_path)
        proxy = FaultProxy(server.port)
    request.addfinalizer(proxy.close)
    for k, v in provider.env.items():
        monkeypatch.setenv(k, v)
    overrides: dict = {
        "s3": {"part_size_mib": 5, "max_attempts": 4},
        "gcs": {"chunk_size_mib": 1, "retry_deadline_s": 4},
        "azure": {"block_size_mib": 1, "max_retries": 3, "retry_backoff_s": 0.2},
    }[name]
    if name == "s3":
        overrides["endpoint_url"] = proxy.url
    elif name == "gcs":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    else:
        monkeypatch.setenv("TEST_AZURE_CONNECTION_STRING", azurite_connection_string(proxy.url))
    return provider, proxy, provider.destination(**overrides)


def _seed(exporter: Exporter) -> None:
    # ~3 MB: several parts/chunks/blocks with the small part sizes above
    insert(exporter.ch, "traces", [trace(f"t{i:05d}", f"{DAY} 10:00", input="x" * 3000) for i in range(1000)])


@pytest.mark.parametrize("kind", ["throttled", "internal"])
@pytest.mark.parametrize("name", ["s3", "gcs", "azure"])
def test_intermittent_errors_are_retried_and_the_export_is_identical(
    exporter, request, tmp_path, monkeypatch, name: str, kind: str
) -> None:
    provider, proxy, dest = _through_proxy(name, request, tmp_path, monkeypatch)
    _seed(exporter)
    exporter.run(DAY, tables=("traces",), destination=dest)
    undisturbed = provider.get(DATA_KEY)

    status, body, headers = (THROTTLED if kind == "throttled" else INTERNAL)[name]
    # every second data request fails once: the first upload step, then a later one
    proxy.faults = [Fault(_is_data_write, status, body, headers, times=2)]
    proxy.requests.clear()
    exporter.run(DAY, tables=("traces",), destination=dest)
    assert proxy.faults[0].injected == 2, proxy.requests
    assert provider.get(DATA_KEY) == undisturbed


@pytest.mark.parametrize("name", ["s3", "gcs", "azure"])
def test_errors_that_do_not_stop_fail_the_run_as_transient_and_keep_the_previous_object(
    exporter, request, tmp_path, monkeypatch, name: str
) -> None:
    provider, proxy, dest = _through_proxy(name, request, tmp_path, monkeypatch)
    _seed(exporter)
    exporter.run(DAY, tables=("traces",), destination=dest)
    good, good_manifest = provider.get(DATA_KEY), provider.get(MANIFEST_KEY)

    insert(exporter.ch, "traces", [trace("late", f"{DAY} 23:00")])
    status, body, headers = INTERNAL[name]
    proxy.faults = [Fault(_is_data_write, status, body, headers, times=None)]
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run(
            DAY, tables=("traces",), destination=dest, instance=instance, raise_on_error=False, retries=1, retry_delay_s=0
        )
    assert not result.success
    # transient: the step's own retry policy ran once more before giving up
    assert [e.event_type_value for e in result.all_events].count("STEP_RESTARTED") == 1
    message = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.to_string()
    assert "retries exhausted" in message or "retried for" in message, message
    assert provider.get(DATA_KEY) == good and provider.get(MANIFEST_KEY) == good_manifest

    proxy.faults = []
    exporter.run(DAY, tables=("traces",), destination=dest)
    assert b'"id":"late"' in provider.get(DATA_KEY)


@pytest.mark.parametrize("name", ["s3", "gcs", "azure"])
def test_permanent_refusal_fails_at_once_without_any_retry(exporter, request, tmp_path, monkeypatch, name: str) -> None:
    provider, proxy, dest = _through_proxy(name, request, tmp_path, monkeypatch)
    _seed(exporter)
    status, body, headers = FORBIDDEN[name]
    proxy.faults = [Fault(_is_data_write, status, body, headers, times=None)]
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run(
            DAY, tables=("traces",), destination=dest, instance=instance, raise_on_error=False, retries=3, retry_delay_s=0
        )
    assert not result.success
    assert proxy.faults[0].injected == 1, proxy.requests  # neither the SDK nor Dagster tried again
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data
    message = (failure.user_failure_data.description if failure.user_failure_data else "") + (
        failure.error.to_string() if failure.error else ""
    )
    assert "denied" in message.lower() or "permission" in message.lower() or "forbidden" in message.lower(), message
    assert provider.get(DATA_KEY) is None and provider.get(MANIFEST_KEY) is None
