"""No credential ever leaves its env var: after failing and succeeding runs, every byte Dagster
stored (event log, run storage, compute logs: the whole instance folder), every log line, every
exception and every object written to the destinations is searched for each secret's value.

The runs use a password-protected ClickHouse server, S3 with an access key, and Azure with a
SAS token; the failures are a wrong ClickHouse password and a forged SAS token.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from dagster import AssetKey, DagsterInstance, materialize

from xeroml_pipelines.config import XeroMLConfig
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines_tests.emulators import AZURITE_ACCOUNT, AZURITE_KEY
from xeroml_pipelines_tests.support import CLICKHOUSE_PASSWORD, CLICKHOUSE_PASSWORD_ENV, make_provider, server_database

DAY = "2025-01-13"


def _sas(container: str, key: str) -> str:
    return generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=key,
        permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


def test_no_secret_in_event_logs_metadata_logs_exceptions_or_objects(
    clickhouse_server, request, tmp_path: Path, monkeypatch, caplog, capfd
) -> None:
    ch = server_database(clickhouse_server, f"s_{uuid.uuid4().hex[:10]}")
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=1, traces_per_day=40))
    s3 = make_provider("s3", request, tmp_path)
    azure = make_provider("azure", request, tmp_path)
    aws_secret = "aws-" + secrets.token_hex(16)
    good_sas = _sas(azure.container, AZURITE_KEY)
    forged_sas = _sas(azure.container, "Zm9yZ2VkLWtleS0" + secrets.token_hex(16) + "==")
    wrong_password = "wrong-" + secrets.token_hex(12)
    monkeypatch.setenv("SECRET_TEST_AWS_KEY_ID", "AKIA" + secrets.token_hex(8).upper())
    monkeypatch.setenv("SECRET_TEST_AWS_SECRET", aws_secret)
    values = {
        "clickhouse password": CLICKHOUSE_PASSWORD,
        "wrong clickhouse password": wrong_password,
        "aws secret key": aws_secret,
        "sas signature": good_sas.split("sig=")[1].split("&")[0],
        "forged sas signature": forged_sas.split("sig=")[1].split("&")[0],
    }

    def config(password_env: str, sas_env: str) -> XeroMLConfig:
        tables = ["traces", "observations", "scores", "sessions"]
        return XeroMLConfig.model_validate(
            {
                "clickhouse": {"url": ch.url, "database": ch.database, "password_env": password_env},
                "exports": [
                    {
                        "name": "to_s3",
                        "project_id": "demo",
                        "start_date": DAY,
                        "retries": 0,
                        "tables": tables,
                        "destination": {
                            **s3.destination(),
                            "access_key_id_env": "SECRET_TEST_AWS_KEY_ID",
                            "secret_access_key_env": "SECRET_TEST_AWS_SECRET",
                        },
                    },
                    {
                        "name": "to_azure",
                        "project_id": "demo",
                        "start_date": DAY,
                        "retries": 0,
                        "tables": tables,
                        "destination": {
                            "provider": "azure",
                            "container": azure.container,
                            "prefix": "xeroml-export",
                            "max_retries": 0,
                            "account_url": f"{azure.endpoint}/{AZURITE_ACCOUNT}",
                            "sas_token_env": sas_env,
                        },
                    },
                ],
            }
        )

    monkeypatch.setenv("SECRET_TEST_CH_WRONG", wrong_password)
    monkeypatch.setenv(CLICKHOUSE_PASSWORD_ENV, CLICKHOUSE_PASSWORD)
    monkeypatch.setenv("SECRET_TEST_SAS_GOOD", good_sas)
    monkeypatch.setenv("SECRET_TEST_SAS_FORGED", forged_sas)
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "dagster_home"
    home.mkdir()
    errors: list[str] = []
    outcomes = []
    with DagsterInstance.local_temp(str(home)) as instance:
        for password_env, sas_env in (
            ("SECRET_TEST_CH_WRONG", "SECRET_TEST_SAS_GOOD"),
            (CLICKHOUSE_PASSWORD_ENV, "SECRET_TEST_SAS_FORGED"),
            (CLICKHOUSE_PASSWORD_ENV, "SECRET_TEST_SAS_GOOD"),
        ):
            defs = build_definitions(config(password_env, sas_env))
            assets = [
                defs.get_assets_def(AssetKey([e, t]))
                for e in ("to_s3", "to_azure")
                for t in ("traces", "observations", "sessions")
            ]
            try:
                result = materialize(assets, partition_key=DAY, resources=defs.resources, instance=instance, raise_on_error=False)
                outcomes.append(result.success)
            except Exception as e:  # noqa: BLE001 - its text is searched below
                errors.append(repr(e) + str(e))
                outcomes.append(False)
        events = [
            json.dumps(str(entry.to_dict() if hasattr(entry, "to_dict") else entry))
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
        ]
        failures = [
            e.dagster_event.event_specific_data
            for run in instance.get_runs()
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
        ]
    assert outcomes == [False, False, True], errors
    # the failures say what went wrong
    texts = [str(f) for f in failures]
    assert any("AUTHENTICATION_FAILED" in t for t in texts), texts
    assert any(azure.container in t and "bad credentials" in t for t in texts), texts
    stored = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}  # sqlite event/run storage, compute logs
    s3_keys, azure_keys = s3.keys(), azure.keys()  # each store's object keys, as its own client lists them
    objects = {k: s3.get(k) for k in s3_keys} | {k: azure.get(k) for k in azure_keys}
    assert any(k.endswith(f"observations/{DAY}.jsonl") for k in objects)
    assert any(p.suffix == ".db" and len(d) > 0 for p, d in stored.items()) and "AUTHENTICATION_FAILED" in "\n".join(events)
    captured = capfd.readouterr()
    haystacks = {
        "event log": "\n".join(events),
        "log records": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "stdout/stderr": captured.out + captured.err,
        "exceptions": "\n".join(errors),
    }
    for what, secret in values.items():
        for where, text in haystacks.items():
            assert secret not in text, f"{what} found in {where}"
        for path, data in stored.items():
            assert secret.encode() not in data, f"{what} found in {path}"
        for key, data in objects.items():
            assert secret.encode() not in data, f"{what} found in object {key}"


def test_no_stored_credential_in_fleet_runs_metadata_logs_or_registry(
    request, ch, tmp_path: Path, monkeypatch, caplog, capfd
) -> None:
    """Registered exports' credentials, stored encrypted: after a fleet run that used one (S3)
    and was refused with another (a forged SAS token), none is in the instance, the run's
    metadata and errors, the logs, the registry's bytes or the objects."""
    from xeroml_pipelines.defs.fleet.keys import fleet_asset_key
    from xeroml_pipelines.registry.entries import parse_entry
    from xeroml_pipelines.registry.keyring import new_key
    from xeroml_pipelines.registry.store import Registry

    generate(ch, DemoSpec(start=date(2025, 1, 13), days=1, traces_per_day=20, projects=("acme", "globex")))
    s3 = make_provider("s3", request, tmp_path)
    azure = make_provider("azure", request, tmp_path)
    aws_secret = "aws-" + secrets.token_hex(16)
    forged_sas = _sas(azure.container, "Zm9yZ2VkLWtleS0" + secrets.token_hex(16) + "==")
    monkeypatch.setenv("XEROML_REGISTRY_KEYS", new_key())
    monkeypatch.setenv("XEROML_ALLOW_ENDPOINTS", "127.0.0.1")
    registry_file = tmp_path / "registry.sqlite"
    monkeypatch.setenv("XEROML_REGISTRY_URL", f"sqlite:///{registry_file}")
    s3_destination = {k: v for k, v in s3.destination().items() if not k.endswith("_env")}
    entries = [
        {
            "name": "acme",
            "project_id": "acme",
            "start_date": DAY,
            "destination": s3_destination,
            "secrets": {"access_key_id": "AKIA" + secrets.token_hex(8).upper(), "secret_access_key": aws_secret},
        },
        {
            "name": "globex",
            "project_id": "globex",
            "start_date": DAY,
            "destination": {
                "provider": "azure",
                "container": azure.container,
                "account_url": f"{azure.endpoint}/{AZURITE_ACCOUNT}",
                "max_retries": 0,
            },
            "secrets": {"sas_token": forged_sas},
        },
    ]
    registry = Registry().create()
    registry.put([parse_entry(e, e["name"]) for e in entries])
    registry.close()
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = XeroMLConfig.model_validate(
        {"clickhouse": {"url": ch.url, "database": ch.database}, "fleet": {"start_date": DAY, "retries": 0}}
    )
    defs = build_definitions(config)
    with DagsterInstance.local_temp(str(home)) as instance:
        asset = defs.get_assets_def(fleet_asset_key("daily", 0, "traces"))
        assert materialize([asset], partition_key=DAY, resources=defs.resources, instance=instance).success
        events = [json.dumps(str(entry)) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]
    text = "\n".join(events)
    assert "bad credentials" in text and azure.container in text  # the refusal is reported, in our words
    objects = {k: s3.get(k) for k in s3.keys()} | {k: azure.get(k) for k in azure.keys()}  # noqa: SIM118 - a store's own listing
    assert f"xeroml-export/traces/{DAY}.jsonl" in objects
    captured = capfd.readouterr()
    haystacks = {
        "event log": text,
        "log records": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "stdout/stderr": captured.out + captured.err,
    }
    stored = {p: p.read_bytes() for p in [*home.rglob("*"), registry_file] if p.is_file()}
    for what, secret in {"aws secret key": aws_secret, "sas signature": forged_sas.split("sig=")[1].split("&")[0]}.items():
        for where, haystack in haystacks.items():
            assert secret not in haystack, f"{what} found in {where}"
        for path, data in stored.items():
            assert secret.encode() not in data, f"{what} found in {path}"
        for key, data in objects.items():
            assert secret.encode() not in (data or b""), f"{what} found in object {key}"
