"""AWS S3 (and S3-compatible stores): streaming multipart upload through dagster-aws's S3Resource.

Every call stays inside the spec's IAM policy (`s3:PutObject`, `s3:GetObject`, `s3:ListBucket`):
no HeadBucket, no CreateBucket. Two calls are optional and degrade cleanly when denied:
`s3:AbortMultipartUpload` (else incomplete uploads wait for a bucket lifecycle rule) and
`s3:DeleteObject` (else the base replaces a stale object with an empty one).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from dagster import get_dagster_logger
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from xeroml_pipelines.io_managers.base import DestinationError, ExportIOManager, content_type

MIB = 1024 * 1024
# S3 allows 10,000 parts; with the 64 MiB default an object may reach 625 GiB.
MAX_PARTS = 10_000

_PERMANENT = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied (check the IAM policy)",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidAccessKeyId": "bad credentials: the access key id is unknown",
    "SignatureDoesNotMatch": "bad credentials: the secret key does not match",
    "ExpiredToken": "bad credentials: the session token expired",
    "InvalidToken": "bad credentials: the session token is invalid",
    "InvalidBucketName": "the bucket name is invalid",
    "KMS.NotFoundException": "the KMS key does not exist",
    "KMS.AccessDeniedException": "access denied to the KMS key",
    "EntityTooLarge": "the object is larger than S3 accepts",
    "InvalidPart": "a part was lost before completion",
    "BadDigest": "a part's checksum did not match what was sent",
    "InvalidDigest": "a part's checksum did not match what was sent",
}


class S3ClientResource(S3Resource):
    """dagster-aws's S3Resource plus what the spec's credentials need: an IAM role to assume
    (with optional external id) and path-style addressing for S3-compatible stores."""

    role_arn: str | None = Field(default=None, description="IAM role assumed through STS before any S3 call")
    external_id: str | None = Field(default=None, description="External id the role's trust policy requires")
    role_session_name: str = "xeroml-export"
    sts_endpoint_url: str | None = Field(default=None, description="Only for STS-compatible services other than AWS")
    addressing_style: Literal["auto", "virtual", "path"] = "auto"

    def get_client(self) -> Any:
        session = boto3.session.Session(
            profile_name=self.profile_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=self.region_name,
        )
        if self.role_arn:
            session = self._assumed_role_session(session)
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            config=Config(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                s3={"addressing_style": self.addressing_style},
            ),
        )

    def _assumed_role_session(self, source: boto3.session.Session) -> boto3.session.Session:
        extra: dict[str, str] = {"RoleSessionName": self.role_session_name}
        if self.external_id:
            extra["ExternalId"] = self.external_id

        def create_client(service: str, **kwargs: Any) -> Any:
            return source.client(service, endpoint_url=self.sts_endpoint_url, region_name=self.region_name, **kwargs)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=create_client,
            source_credentials=source.get_credentials(),
            role_arn=self.role_arn,
            extra_args=extra,
        )
        # Refreshed before they expire, so an export longer than the role's session still works.
        core = botocore.session.Session()
        core._credentials = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)
        return boto3.session.Session(botocore_session=core, region_name=self.region_name)


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class _MultipartUpload:
    """Buffers one part, sends it, and completes only after the last part; a single PUT when
    the whole object fits in one part."""

    def __init__(self, io: S3ExportIOManager, key: str) -> None:
        self._io, self._key = io, key
        self._part_size = io.part_size_mib * MIB
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._part_md5s: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            self._send_part(bytes(self._buffer[: self._part_size]))
            del self._buffer[: self._part_size]

    def _send_part(self, body: bytes) -> None:
        io = self._io
        if len(self._parts) >= MAX_PARTS:
            raise DestinationError(
                f"s3://{io.bucket}/{self._key}: more than {MAX_PARTS} parts of {io.part_size_mib} MiB; raise part_size_mib",
                permanent=True,
            )
        with io._errors("UploadPart", self._key):
            if self._upload_id is None:
                self._upload_id = io._client.create_multipart_upload(
                    Bucket=io.bucket, Key=self._key, ContentType=content_type(self._key), **io._sse()
                )["UploadId"]
            number = len(self._parts) + 1
            response = io._client.upload_part(
                Bucket=io.bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body, ContentMD5=_b64md5(body)
            )
        md5 = hashlib.md5(body)
        io._check_etag(response["ETag"], md5.hexdigest(), self._key)
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._part_md5s.append(md5.digest())

    def commit(self, size: int) -> None:
        io = self._io
        if self._upload_id is None:
            body = bytes(self._buffer)
            with io._errors("PutObject", self._key):
                response = io._client.put_object(
                    Bucket=io.bucket, Key=self._key, Body=body, ContentMD5=_b64md5(body), ContentType=content_type(self._key), **io._sse()
                )
            io._check_etag(response["ETag"], hashlib.md5(body).hexdigest(), self._key)
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))  # the last part may be smaller than 5 MiB
            expected = hashlib.md5(b"".join(self._part_md5s)).hexdigest() + f"-{len(self._parts)}"
            with io._errors("CompleteMultipartUpload", self._key):
                response = io._client.complete_multipart_upload(
                    Bucket=io.bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
                )
            self._upload_id = None
            io._check_etag(response["ETag"], expected, self._key)
        self._buffer.clear()
        with io._errors("HeadObject", self._key):
            stored = io._client.head_object(Bucket=io.bucket, Key=self._key)["ContentLength"]
        if stored != size:
            raise DestinationError(f"s3://{io.bucket}/{self._key} holds {stored} bytes after upload, expected {size}", permanent=False)

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is None:
            return
        io = self._io
        try:
            io._client.abort_multipart_upload(Bucket=io.bucket, Key=self._key, UploadId=self._upload_id)
        except (ClientError, BotoCoreError) as e:
            # Nothing is visible either way: an incomplete upload never shows at the key.
            get_dagster_logger().warning(
                f"s3://{io.bucket}/{self._key}: could not abort multipart upload ({_code(e)}); its parts stay billed until "
                "an AbortIncompleteMultipartUpload lifecycle rule removes them (or grant s3:AbortMultipartUpload)"
            )
        self._upload_id = None


def _code(e: Exception) -> str:
    if isinstance(e, ClientError):
        return str(e.response.get("Error", {}).get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return type(e).__name__


class S3ExportIOManager(ExportIOManager):
    s3: S3ClientResource
    bucket: str
    part_size_mib: int = Field(default=64, ge=5, le=5 * 1024, description="Multipart part size; 10,000 parts max per object")
    sse_kms_key_id: str | None = Field(default=None, description="Encrypt objects with this KMS key (SSE-KMS)")

    _client_cache: Any = PrivateAttr(default=None)

    @property
    def upload_buffer_bytes(self) -> int:
        return self.part_size_mib * MIB

    @property
    def _client(self) -> Any:
        if self._client_cache is None:
            self._client_cache = self.s3.get_client()
        return self._client_cache

    def _sse(self) -> dict[str, str]:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id} if self.sse_kms_key_id else {}

    def _check_etag(self, etag: str, expected_md5: str, key: str) -> None:
        # With SSE-KMS the ETag is not an MD5; the ContentMD5 sent with each request was checked
        # by S3 itself.
        if not self.sse_kms_key_id and etag.strip('"') != expected_md5:
            raise DestinationError(f"s3://{self.bucket}/{key}: stored ETag {etag} does not match the bytes sent", permanent=False)

    def _translate(self, e: Exception, operation: str, key: str) -> DestinationError:
        where = f"S3 bucket {self.bucket!r} ({operation} {key})"
        if isinstance(e, NoCredentialsError):
            return DestinationError(
                f"S3 bucket {self.bucket!r}: no AWS credentials found (set the access key env vars, a profile, or an instance role)",
                permanent=True,
            )
        if isinstance(e, ClientError):
            code = _code(e)
            if code in _PERMANENT:
                return DestinationError(f"{where}: {_PERMANENT[code]} [{code}]", permanent=True)
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (400, 401, 403, 404, 405, 409, 411, 412) and code != "RequestTimeout":
                return DestinationError(f"{where}: request refused [{code}]", permanent=True)
            return DestinationError(f"{where}: S3 is throttling or unavailable [{code}], retries exhausted", permanent=False)
        return DestinationError(f"{where}: cannot reach S3 ({type(e).__name__}), retries exhausted", permanent=False)

    @contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as e:
            raise self._translate(e, operation, key) from None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def open_upload(self, key: str) -> _MultipartUpload:
        return _MultipartUpload(self, key)

    @contextmanager
    def _reading(self, operation: str, key: str) -> Iterator[None]:
        """Like `_errors`, but a missing object is `FileNotFoundError` (Dagster relies on it)."""
        try:
            yield
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.uri(key)) from None
            raise self._translate(e, operation, key) from None
        except BotoCoreError as e:
            raise self._translate(e, operation, key) from None

    def read_bytes(self, key: str) -> bytes:
        with self._reading("GetObject", key):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write_small(self, key: str, data: bytes) -> None:
        with self._errors("PutObject", key):
            response = self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentMD5=_b64md5(data), ContentType=content_type(key), **self._sse()
            )
        self._check_etag(response["ETag"], hashlib.md5(data).hexdigest(), key)

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) == "AccessDenied":
                raise PermissionError(self.uri(key)) from None
            raise self._translate(e, "DeleteObject", key) from None
        except BotoCoreError as e:
            raise self._translate(e, "DeleteObject", key) from None

    def exists(self, key: str) -> bool:
        try:
            with self._reading("HeadObject", key):
                self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except FileNotFoundError:
            return False

    def download(self, key: str, dest: Path) -> None:
        with self._reading("GetObject", key):
            self._client.download_file(self.bucket, key, str(dest))

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("ListObjectsV2", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"], obj["Size"]
