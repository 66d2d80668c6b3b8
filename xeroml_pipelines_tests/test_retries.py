"""Transient failures are retried by the step's retry policy; permanent ones fail at once."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from xeroml_pipelines.destinations.errors import DestinationError
from xeroml_pipelines.destinations.local import _StagedFile
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.support import Exporter


def _failing_first_write(monkeypatch: pytest.MonkeyPatch, permanent: bool) -> dict[str, int]:
    real = _StagedFile.write
    attempts = {"n": 0}

    def write(self, data: bytes) -> None:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise DestinationError(
                "bucket 'b': throttled [SlowDown]" if not permanent else "bucket 'b': access denied", permanent=permanent
            )
        real(self, data)

    monkeypatch.setattr(_StagedFile, "write", write)
    return attempts


def test_transient_failure_is_retried(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    attempts = _failing_first_write(monkeypatch, permanent=False)
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run("2025-01-15", tables=("traces",), retries=2, retry_delay_s=0, instance=instance)
        assert result.success
        assert any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
    assert attempts["n"] == 3  # the failed data write, its retry, the manifest
    assert [line["id"] for line in exporter.lines("traces", "2025-01-15")] == ["a"]


def test_permanent_failure_is_not_retried(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    attempts = _failing_first_write(monkeypatch, permanent=True)
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(Exception, match="access denied"):
            exporter.run("2025-01-15", tables=("traces",), retries=3, retry_delay_s=0, instance=instance)
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.FAILURE
    assert attempts["n"] == 1
    assert not exporter.path("traces", "2025-01-15").exists()


def test_an_unset_secret_fails_the_run_at_once_naming_its_variable(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    """The destination reads its credentials as it opens its client: an unset variable is a
    permanent failure (no retry sets it), told by the setting and the variable's name."""
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    monkeypatch.delenv("XEROML_TEST_UNSET_KEY_ID", raising=False)
    monkeypatch.setenv("XEROML_TEST_SET_SECRET", "set")
    destination = {
        "provider": "s3",
        "bucket": "never-reached",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key_id_env": "XEROML_TEST_UNSET_KEY_ID",
        "secret_access_key_env": "XEROML_TEST_SET_SECRET",
    }
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run(
            "2025-01-15",
            tables=("traces",),
            retries=3,
            retry_delay_s=0,
            instance=instance,
            raise_on_error=False,
            destination=destination,
        )
        assert not result.success
        assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "destination.access_key_id_env: the environment variable XEROML_TEST_UNSET_KEY_ID is unset or empty" in str(
            failure.event_specific_data
        )
