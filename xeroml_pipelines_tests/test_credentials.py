"""Credentials and least privilege: the spec's IAM policy is enough, roles work, bad credentials
fail clearly, and no secret appears in what a failure shows."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC

import boto3
import pytest
from dagster import DagsterInstance

from xeroml_pipelines_tests.emulators import AZURITE_ACCOUNT, moto
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.providers import PREFIX
from xeroml_pipelines_tests.support import Exporter, make_provider

BUCKET = "iam-export-bucket"
SPEC_POLICY = {  # verbatim from the spec (Blob Storage Export -> AWS S3)
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        }
    ],
}


@dataclass
class IamMoto:
    url: str
    key_id: str
    secret: str
    assumer_key_id: str
    assumer_secret: str
    role_arn: str


@pytest.fixture(scope="module")
def iam_moto(emulator_dir):
    setup_calls = 9  # moto enforces IAM from the 10th request on: exactly the calls below are free
    server = moto(emulator_dir, env={"INITIAL_NO_AUTH_ACTION_COUNT": str(setup_calls)}).start()
    try:
        kw = {
            "endpoint_url": server.url,
            "region_name": "us-east-1",
            "aws_access_key_id": "AKIASETUP",
            "aws_secret_access_key": "setup",
        }
        boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="exporter")
        iam.put_user_policy(UserName="exporter", PolicyName="spec", PolicyDocument=json.dumps(SPEC_POLICY))
        key = iam.create_access_key(UserName="exporter")["AccessKey"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        }
        role = iam.create_role(RoleName="xeroml-export", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        iam.put_role_policy(RoleName="xeroml-export", PolicyName="spec", PolicyDocument=json.dumps(SPEC_POLICY))
        iam.create_user(UserName="assumer")
        assume_only = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}],
        }
        iam.put_user_policy(UserName="assumer", PolicyName="assume", PolicyDocument=json.dumps(assume_only))
        assumer = iam.create_access_key(UserName="assumer")["AccessKey"]
        yield IamMoto(
            server.url,
            key["AccessKeyId"],
            key["SecretAccessKey"],
            assumer["AccessKeyId"],
            assumer["SecretAccessKey"],
            role["Arn"],
        )
    finally:
        server.stop()


def _s3_destination(m: IamMoto, **extra) -> dict:
    return {
        "provider": "s3",
        "bucket": BUCKET,
        "prefix": PREFIX,
        "region": "us-east-1",
        "endpoint_url": m.url,
        "access_key_id_env": "EXPORT_KEY_ID",
        "secret_access_key_env": "EXPORT_SECRET",
        "max_attempts": 2,
        "part_size_mib": 5,
        **extra,
    }


def _keys(m: IamMoto) -> list[str]:
    s3 = boto3.client(
        "s3", endpoint_url=m.url, region_name="us-east-1", aws_access_key_id=m.key_id, aws_secret_access_key=m.secret
    )
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def _get(m: IamMoto, key: str) -> bytes:
    s3 = boto3.client(
        "s3", endpoint_url=m.url, region_name="us-east-1", aws_access_key_id=m.key_id, aws_secret_access_key=m.secret
    )
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_spec_iam_policy_is_enough(exporter: Exporter, iam_moto: IamMoto, monkeypatch) -> None:
    monkeypatch.setenv("EXPORT_KEY_ID", iam_moto.key_id)
    monkeypatch.setenv("EXPORT_SECRET", iam_moto.secret)
    insert(exporter.ch, "traces", [trace(f"t{i}", "2025-01-15 10:00", session_id="s", input="z" * 5000) for i in range(1200)])
    exporter.run("2025-01-15", destination=_s3_destination(iam_moto))  # multipart: 6 MB in 5 MiB parts
    assert f"{PREFIX}/traces/2025-01-15.jsonl" in _keys(iam_moto)
    assert len(_get(iam_moto, f"{PREFIX}/traces/2025-01-15.jsonl").splitlines()) == 1200

    # Without s3:DeleteObject a stale object is neutralized: replaced by an empty one.
    insert(exporter.ch, "traces", [trace(f"t{i}", "2025-01-16 10:00", timestamp="2025-01-15 10:00") for i in range(1200)])
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run("2025-01-15", tables=("traces",), destination=_s3_destination(iam_moto), instance=instance)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert _get(iam_moto, f"{PREFIX}/traces/2025-01-15.jsonl") == b""
    assert any("no permission to delete" in m for m in logs)


def test_assumed_role_carries_the_rights(exporter: Exporter, iam_moto: IamMoto, monkeypatch) -> None:
    # The assumer may only call sts:AssumeRole: every S3 right comes from the role.
    monkeypatch.setenv("EXPORT_KEY_ID", iam_moto.assumer_key_id)
    monkeypatch.setenv("EXPORT_SECRET", iam_moto.assumer_secret)
    insert(exporter.ch, "traces", [trace("r1", "2025-01-20 10:00")])
    dest = _s3_destination(iam_moto, role_arn=iam_moto.role_arn, sts_endpoint_url=iam_moto.url, prefix="via-role")
    exporter.run("2025-01-20", tables=("traces",), destination=dest)
    assert "via-role/traces/2025-01-20.jsonl" in _keys(iam_moto)
    with pytest.raises(Exception, match="access denied"):
        exporter.run("2025-01-20", tables=("traces",), destination={**dest, "role_arn": None})


WRONG_SECRET = "wrong-secret-value-7f3a9c"


@pytest.mark.parametrize("name", ["s3", "gcs", "azure"])
def test_bad_credentials_fail_clearly_and_never_print_the_secret(
    exporter, iam_moto, request, tmp_path, monkeypatch, name
) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    if name == "s3":
        monkeypatch.setenv("EXPORT_KEY_ID", iam_moto.key_id)
        monkeypatch.setenv("EXPORT_SECRET", WRONG_SECRET)
        dest, cause = _s3_destination(iam_moto), "bad credentials"
    elif name == "azure":
        provider = make_provider("azure", request, tmp_path)
        wrong_key = base64.b64encode(WRONG_SECRET.encode() * 2).decode()
        monkeypatch.setenv(
            provider.destination()["connection_string_env"],
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={wrong_key};BlobEndpoint={provider.endpoint}/{AZURITE_ACCOUNT};",
        )
        dest, cause = provider.destination(), "bad credentials"
    else:
        provider = make_provider("gcs", request, tmp_path)
        monkeypatch.setenv("GCS_KEY_JSON", '{"type": "service_account", "private_key": "' + WRONG_SECRET + '"')
        dest, cause = provider.destination(service_account_json_env="GCS_KEY_JSON"), "service-account key"
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(Exception) as err:
            exporter.run("2025-01-15", tables=("traces",), destination=dest, instance=instance)
        everything = str(err.value) + "".join(
            str(e.user_message) + str(e.dagster_event.event_specific_data if e.dagster_event else "")
            for e in instance.all_logs(instance.get_runs()[0].run_id)
        )
    assert cause in str(err.value)
    assert (BUCKET if name == "s3" else "") in str(err.value)
    assert WRONG_SECRET not in everything
    assert base64.b64encode(WRONG_SECRET.encode() * 2).decode() not in everything


def test_azure_sas_without_delete_permission(exporter: Exporter, request, tmp_path, monkeypatch) -> None:
    from datetime import datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from xeroml_pipelines_tests.emulators import AZURITE_KEY

    provider = make_provider("azure", request, tmp_path)
    sas = generate_container_sas(
        AZURITE_ACCOUNT,
        provider.container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, write=True, list=True),  # the spec's "read/write", no delete
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.setenv("TEST_AZURE_SAS", sas)
    dest = {
        "provider": "azure",
        "container": provider.container,
        "prefix": PREFIX,
        "max_retries": 1,
        "account_url": f"{provider.endpoint}/{AZURITE_ACCOUNT}",
        "sas_token_env": "TEST_AZURE_SAS",
    }
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",), destination=dest)
    assert provider.get(f"{PREFIX}/traces/2025-01-15.jsonl").count(b"\n") == 1
    manifest = json.loads(provider.get(f"{PREFIX}/_manifests/traces/2025-01-15.json"))
    assert "sig=" not in manifest["uri"] and sas not in json.dumps(manifest)

    insert(exporter.ch, "traces", [trace("a", "2025-01-16 10:00", timestamp="2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",), destination=dest)
    assert provider.get(f"{PREFIX}/traces/2025-01-15.jsonl") == b""
