"""AWS S3 (and S3-compatible stores): a streaming multipart upload.

Every call stays inside the spec's IAM policy (`s3:PutObject`, `s3:GetObject`, `s3:ListBucket`):
no HeadBucket, no CreateBucket. Two calls are optional and degrade cleanly when denied:
`s3:AbortMultipartUpload` (else incomplete uploads wait for a bucket lifecycle rule) and
`s3:DeleteObject` (else `Destination.remove` replaces a stale object with an empty one, and a
released commit lock stays as an empty object).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from dagster import get_dagster_logger
from pydantic import Field, PrivateAttr, field_validator, model_validator

from xeroml_pipelines.destinations.base import MIB, content_type
from xeroml_pipelines.destinations.errors import DestinationError
from xeroml_pipelines.destinations.object_store import ObjectStore
from xeroml_pipelines.destinations.s3_errors import CONDITION_FAILED, error_code, translate
from xeroml_pipelines.identifiers import BUCKET, ROLE_ARN, EnvVarName

MAX_PARTS = 10_000


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class _MultipartUpload:
    """Buffers one part, sends it, and completes only after the last part; a single PUT when
    the whole object fits in one part."""

    def __init__(self, bucket: S3Bucket, key: str) -> None:
        self._bucket, self._key = bucket, key
        self._part_size = bucket.part_size_mib * MIB
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._part_md5s: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            self._send_part(bytes(self._buffer[: self._part_size]))
            del self._buffer[: self._part_size]

    def _send_part(self, body: bytes) -> None:
        b = self._bucket
        if len(self._parts) >= MAX_PARTS:
            raise DestinationError(
                f"{b.uri(self._key)}: more than {MAX_PARTS} parts of {b.part_size_mib} MiB; raise part_size_mib", permanent=True
            )
        with b.errors("UploadPart", self._key):
            if self._upload_id is None:
                self._upload_id = b.client.create_multipart_upload(
                    Bucket=b.bucket, Key=self._key, ContentType=content_type(self._key), **b.encryption()
                )["UploadId"]
            number = len(self._parts) + 1
            response = b.client.upload_part(
                Bucket=b.bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body, ContentMD5=_b64md5(body)
            )
        md5 = hashlib.md5(body)
        b.check_etag(response["ETag"], md5.hexdigest(), self._key)
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._part_md5s.append(md5.digest())

    def commit(self, size: int) -> None:
        b = self._bucket
        if self._upload_id is None:
            b.write_small(self._key, bytes(self._buffer))  # the whole object fits in one part: one PUT
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))  # the last part may be smaller than 5 MiB
            expected = hashlib.md5(b"".join(self._part_md5s)).hexdigest() + f"-{len(self._parts)}"
            with b.errors("CompleteMultipartUpload", self._key):
                response = b.client.complete_multipart_upload(
                    Bucket=b.bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
                )
            self._upload_id = None
            b.check_etag(response["ETag"], expected, self._key)
        self._buffer.clear()
        with b.errors("HeadObject", self._key):
            stored = b.client.head_object(Bucket=b.bucket, Key=self._key)["ContentLength"]
        if stored != size:
            raise DestinationError(f"{b.uri(self._key)} holds {stored} bytes after upload, expected {size}", permanent=False)

    def abort(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._buffer.clear()
        if self._upload_id is None:
            return
        b = self._bucket
        try:
            b.client.abort_multipart_upload(Bucket=b.bucket, Key=self._key, UploadId=self._upload_id)
        except (ClientError, BotoCoreError) as e:
            # Nothing is visible either way: an incomplete upload never shows at the key.
            get_dagster_logger().warning(
                f"{b.uri(self._key)}: could not abort multipart upload ({error_code(e)}); its parts stay billed until "
                "an AbortIncompleteMultipartUpload lifecycle rule removes them (or grant s3:AbortMultipartUpload)"
            )
        self._upload_id = None


class S3Bucket(ObjectStore):
    """AWS S3 or an S3-compatible store. Credentials: access key env vars, else the default
    chain (env, profile, instance role); optionally a role to assume on top."""

    provider: Literal["s3"] = "s3"
    bucket: str = Field(pattern=BUCKET)
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="S3-compatible store; plain http only when written here")
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    access_key_id_env: EnvVarName | None = None
    secret_access_key_env: EnvVarName | None = None
    session_token_env: EnvVarName | None = None
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN, description="IAM role assumed through STS before any S3 call")
    external_id_env: EnvVarName | None = Field(default=None, description="The external id the role's trust policy requires")
    sts_endpoint_url: str | None = Field(default=None, description="Only for STS-compatible services other than AWS")
    sse_kms_key_id: str | None = Field(default=None, description="Encrypt objects with this KMS key (SSE-KMS)")
    # S3 allows 10,000 parts; with the 64 MiB default an object may reach 625 GiB.
    part_size_mib: int = Field(default=64, ge=5, le=5 * 1024, description="Multipart part size; 10,000 parts max per object")
    max_attempts: int = Field(default=5, ge=1, le=20)

    _client: Any = PrivateAttr(default=None)

    @field_validator("endpoint_url", "sts_endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError(f"must be http(s)://host[:port], got {v!r}")
        return v

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> S3Bucket:
        if bool(self.access_key_id_env) != bool(self.secret_access_key_env):
            raise ValueError("access_key_id_env and secret_access_key_env go together")
        if self.session_token_env and not self.access_key_id_env:
            raise ValueError("session_token_env needs access_key_id_env and secret_access_key_env")
        return self

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def upload_buffer_bytes(self) -> int:
        return self.part_size_mib * MIB

    @property
    def client(self) -> Any:
        if self._client is None:
            from xeroml_pipelines.destinations.s3_client import s3_client

            self._client = s3_client(
                region=self.region,
                endpoint_url=self.endpoint_url,
                addressing_style=self.addressing_style,
                max_attempts=self.max_attempts,
                profile=self.profile,
                access_key_id=self.credential("access_key_id"),
                secret_access_key=self.credential("secret_access_key"),
                session_token=self.credential("session_token"),
                role_arn=self.role_arn,
                external_id=self.credential("external_id"),
                sts_endpoint_url=self.sts_endpoint_url,
            )
        return self._client

    def encryption(self) -> dict[str, str]:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id} if self.sse_kms_key_id else {}

    def check_etag(self, etag: str, expected_md5: str, key: str) -> None:
        # With SSE-KMS the ETag is not an MD5; the ContentMD5 sent with each request was checked
        # by S3 itself.
        if not self.sse_kms_key_id and etag.strip('"') != expected_md5:
            raise DestinationError(f"{self.uri(key)}: stored ETag {etag} does not match the bytes sent", permanent=False)

    def translate(self, e: Exception, operation: str, key: str) -> DestinationError:
        return translate(e, f"S3 bucket {self.bucket!r}", operation, key)

    @contextmanager
    def errors(self, operation: str, key: str, missing_ok: bool = False) -> Iterator[None]:
        """SDK errors as `DestinationError`s; with `missing_ok`, a missing object is
        `FileNotFoundError` (Dagster relies on it)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as e:
            if missing_ok and error_code(e) in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.uri(key)) from None
            raise self.translate(e, operation, key) from None
        except BotoCoreError as e:
            raise self.translate(e, operation, key) from None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def open_upload(self, key: str) -> _MultipartUpload:
        return _MultipartUpload(self, key)

    def read_bytes(self, key: str) -> bytes:
        with self.errors("GetObject", key, missing_ok=True):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write_small(self, key: str, data: bytes) -> None:
        with self.errors("PutObject", key):
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentMD5=_b64md5(data),
                ContentType=content_type(key),
                **self.encryption(),
            )
        self.check_etag(response["ETag"], hashlib.md5(data).hexdigest(), key)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            with self.errors("GetObject", key, missing_ok=True):
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                return response["Body"].read(), response["ETag"]
        except FileNotFoundError:
            return None

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentMD5=_b64md5(data), **condition, **self.encryption()
            )
        except ClientError as e:
            if error_code(e) in CONDITION_FAILED:
                return None
            raise self.translate(e, "PutObject", key) from None
        except BotoCoreError as e:
            raise self.translate(e, "PutObject", key) from None
        return str(response["ETag"])

    def delete_if(self, key: str, version: str) -> bool:
        # DeleteObject's If-Match is not offered by every S3-compatible store: compare, then delete
        current = self.read_versioned(key)
        if current is None or current[1] != version:
            return False
        self.delete(key)
        return True

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if error_code(e) == "AccessDenied":
                raise PermissionError(self.uri(key)) from None
            raise self.translate(e, "DeleteObject", key) from None
        except BotoCoreError as e:
            raise self.translate(e, "DeleteObject", key) from None

    def exists(self, key: str) -> bool:
        try:
            with self.errors("HeadObject", key, missing_ok=True):
                self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except FileNotFoundError:
            return False

    def download(self, key: str, dest: Path) -> None:
        with self.errors("GetObject", key, missing_ok=True):
            self.client.download_file(self.bucket, key, str(dest))

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        with self.errors("ListObjectsV2", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"], obj["Size"]
