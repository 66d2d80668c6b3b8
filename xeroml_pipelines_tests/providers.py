"""One helper per destination: a fresh bucket/container, its YAML destination, direct reads.

The same contract tests run against each; reads go straight to the emulator (not through the
code under test) so a test sees what a user of the bucket would see.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from azure.storage.blob import BlobServiceClient
from google.cloud import storage

from xeroml_pipelines_tests.emulators import azurite_connection_string

PREFIX = "xeroml-export"
WRITER_FOLDERS = ("_staging/", "_locks/")


@dataclass
class Provider:
    name: str
    env: dict[str, str] = field(default_factory=dict)

    def destination(self, **overrides: Any) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def keys(self) -> list[str]:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """What a writer's own machinery left behind: staged uploads, commit locks."""
        return [k for k in self.keys() if k.startswith(WRITER_FOLDERS)]


@dataclass
class Local(Provider):
    root: Path = Path()

    def destination(self, **overrides: Any) -> dict[str, Any]:
        return {"provider": "local", "path": str(self.root), "prefix": PREFIX, **overrides}

    def get(self, key: str) -> bytes | None:
        p = self.root / key
        return p.read_bytes() if p.exists() else None

    def keys(self) -> list[str]:
        # what a reader of the destination sees: the lock and staging folders are the writer's own
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.relative_to(self.root).parts[0].startswith("_")
        )

    def put(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def leftovers(self) -> list[str]:
        # lock files stay (flock's lock lives on the open file, not in it); staged files must not
        return [p.name for p in (self.root / "_staging").glob("*")]


@dataclass
class S3(Provider):
    endpoint: str = ""
    bucket: str = field(default_factory=lambda: f"xeroml-{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        self.env = {"TEST_AWS_KEY_ID": "testing-key-id", "TEST_AWS_SECRET": "testing-secret-value-s3"}
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"
        )
        self.client.create_bucket(Bucket=self.bucket)

    def destination(self, **overrides: Any) -> dict[str, Any]:
        return {
            "provider": "s3",
            "bucket": self.bucket,
            "prefix": PREFIX,
            "region": "us-east-1",
            "endpoint_url": self.endpoint,
            "access_key_id_env": "TEST_AWS_KEY_ID",
            "secret_access_key_env": "TEST_AWS_SECRET",
            "max_attempts": 2,
            **overrides,
        }

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def incomplete_uploads(self) -> list[str]:
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    def leftovers(self) -> list[str]:
        return super().leftovers() + self.incomplete_uploads()


@dataclass
class GCS(Provider):
    endpoint: str = ""
    bucket: str = field(default_factory=lambda: f"xeroml-{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        self.env = {"STORAGE_EMULATOR_HOST": self.endpoint}
        client = storage.Client(project="test", client_options={"api_endpoint": self.endpoint}, credentials=_anonymous())
        self.handle = client.create_bucket(self.bucket)

    def destination(self, **overrides: Any) -> dict[str, Any]:
        return {"provider": "gcs", "bucket": self.bucket, "prefix": PREFIX, "project": "test", "retry_deadline_s": 5, **overrides}

    def get(self, key: str) -> bytes | None:
        blob = self.handle.get_blob(key)
        return None if blob is None else blob.download_as_bytes()

    def keys(self) -> list[str]:
        return sorted(b.name for b in self.handle.list_blobs())

    def put(self, key: str, data: bytes) -> None:
        self.handle.blob(key).upload_from_string(data)


def _anonymous():
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


@dataclass
class Azure(Provider):
    endpoint: str = ""
    container: str = field(default_factory=lambda: f"xeroml-{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        self.env = {"TEST_AZURE_CONNECTION_STRING": azurite_connection_string(self.endpoint)}
        self.service = BlobServiceClient.from_connection_string(azurite_connection_string(self.endpoint))
        self.handle = self.service.create_container(self.container)

    def destination(self, **overrides: Any) -> dict[str, Any]:
        return {
            "provider": "azure",
            "container": self.container,
            "prefix": PREFIX,
            "connection_string_env": "TEST_AZURE_CONNECTION_STRING",
            "max_retries": 1,
            **overrides,
        }

    def get(self, key: str) -> bytes | None:
        blob = self.handle.get_blob_client(key)
        return blob.download_blob().readall() if blob.exists() else None

    def keys(self) -> list[str]:
        return sorted(b.name for b in self.handle.list_blobs())

    def put(self, key: str, data: bytes) -> None:
        self.handle.get_blob_client(key).upload_blob(data, overwrite=True)

    def leftovers(self) -> list[str]:
        # blocks staged and never committed are invisible to a plain listing
        listed = self.handle.list_blobs(include=["uncommittedblobs"])
        return sorted({b.name for b in listed if b.name.startswith(WRITER_FOLDERS)})
