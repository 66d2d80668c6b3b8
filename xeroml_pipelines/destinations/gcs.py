"""Google Cloud Storage: a resumable upload streamed in chunks, with dagster-gcp's client when no
key is given (Application Default Credentials).

The object exists only once the upload is finalized; a failed run cancels the session. The
stored object's size and MD5 are compared with what was sent before the manifest is written.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from xeroml_pipelines.destinations.base import MIB, content_type
from xeroml_pipelines.destinations.errors import DestinationError, Service
from xeroml_pipelines.destinations.object_store import ObjectStore
from xeroml_pipelines.identifiers import BUCKET, EnvVarName

if TYPE_CHECKING:  # google's libraries load when a client is opened: they take about a second
    from google.api_core.retry import Retry
    from google.cloud import storage

# GCS answers with HTTP statuses only: they are the codes.
GCS = Service(
    "GCS",
    {
        "HTTP 401": "bad credentials",
        "HTTP 403": "access denied (check the service account's roles on the bucket)",
        "HTTP 404": "the bucket does not exist",
        "HTTP 400": "request refused",
        "HTTP 412": "precondition failed",
    },
)


def _status(e: Exception) -> int | None:
    from google.api_core import exceptions as gexc
    from google.resumable_media import InvalidResponse

    if isinstance(e, gexc.GoogleAPICallError):
        return e.code
    if isinstance(e, InvalidResponse):
        return getattr(e.response, "status_code", None)
    return None


class _ResumableUpload:
    def __init__(self, bucket: GCSBucket, key: str) -> None:
        self._bucket, self._key = bucket, key
        self._md5 = hashlib.md5()
        # Resumable chunks are idempotent: always retried on 429/5xx and lost connections.
        self._writer = bucket.handle.blob(key).open(
            "wb",
            chunk_size=bucket.chunk_size_mib * MIB,
            content_type=content_type(key),
            ignore_flush=True,
            checksum="md5",
            retry=bucket.retry,
        )

    def write(self, data: bytes | memoryview) -> None:
        self._md5.update(data)
        with self._bucket.errors("resumable upload", self._key):
            self._writer.write(data)

    def commit(self, size: int) -> None:
        b = self._bucket
        with b.errors("finalize upload", self._key):
            self._writer.close()
            blob = b.handle.get_blob(self._key, retry=b.retry)
        expected_md5 = base64.b64encode(self._md5.digest()).decode()
        if blob is None or blob.size != size or (blob.md5_hash and blob.md5_hash != expected_md5):
            got = "no object" if blob is None else f"{blob.size} bytes, md5 {blob.md5_hash}"
            raise DestinationError(
                f"{b.uri(self._key)}: stored object ({got}) differs from what was sent ({size} bytes)", permanent=False
            )

    def abort(self) -> None:
        # Cancels the resumable session: nothing was finalized. An unreachable server cannot have
        # finalized it either, so any failure to cancel is ignored.
        if not self._writer.closed:
            with contextlib.suppress(Exception):
                self._writer.terminate()


class GCSBucket(ObjectStore):
    """Google Cloud Storage. Credentials: a service-account key (file, or JSON in an env var),
    else Application Default Credentials (or the emulator STORAGE_EMULATOR_HOST names)."""

    provider: Literal["gcs"] = "gcs"
    bucket: str = Field(pattern=BUCKET)
    project: str | None = None
    service_account_json_env: EnvVarName | None = Field(default=None, description="Env var holding the key's JSON")
    service_account_file: str | None = Field(default=None, description="Path to the service-account key file")
    chunk_size_mib: int = Field(default=16, ge=1, le=1024, description="Resumable upload chunk size")
    retry_deadline_s: float = Field(default=300, gt=0, description="How long transient errors are retried per request")

    _handle: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_key(self) -> GCSBucket:
        if self.service_account_json_env and self.service_account_file:
            raise ValueError("give service_account_json_env or service_account_file, not both")
        return self

    @property
    def location(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"

    @property
    def upload_buffer_bytes(self) -> int:
        return self.chunk_size_mib * MIB

    @property
    def handle(self) -> storage.Bucket:
        if self._handle is None:
            # `bucket()` makes no request: no storage.buckets.get permission is needed.
            self._handle = self._client().bucket(self.bucket)
        return self._handle

    def _client(self) -> storage.Client:
        from google.cloud import storage

        key = self.credential("service_account_json")
        if key:
            from google.oauth2 import service_account

            try:
                info = json.loads(key)
            except json.JSONDecodeError:
                raise DestinationError("GCS: the service-account key is not valid JSON", permanent=True) from None
            try:
                credentials = service_account.Credentials.from_service_account_info(info)
            except (ValueError, KeyError) as e:
                raise DestinationError(
                    f"GCS: the service-account key is incomplete ({type(e).__name__})", permanent=True
                ) from None
            return storage.Client(project=self.project or info.get("project_id"), credentials=credentials)
        if self.service_account_file:
            try:
                return storage.Client.from_service_account_json(self.service_account_file, project=self.project)
            except (OSError, ValueError) as e:
                raise DestinationError(
                    f"GCS: cannot use service-account file {self.service_account_file!r} ({type(e).__name__})", permanent=True
                ) from None
        from dagster_gcp import GCSResource

        return GCSResource(project=self.project).get_client()

    @property
    def retry(self) -> Retry:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.retry_deadline_s)

    @contextmanager
    def errors(self, operation: str, key: str) -> Iterator[None]:
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError, RefreshError
        from google.resumable_media import DataCorruption, InvalidResponse
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import Timeout

        where = f"GCS bucket {self.bucket!r} ({operation} {key})"
        try:
            yield
        except (DefaultCredentialsError, RefreshError) as e:
            raise GCS.bad_credentials(where, f"bad or missing credentials ({type(e).__name__})") from None
        except (gexc.GoogleAPICallError, InvalidResponse) as e:
            status = _status(e)
            raise GCS.refused(where, f"HTTP {status}", status) from None
        except gexc.RetryError as e:
            raise GCS.unreachable(where, e.cause or e, f"retried for {self.retry_deadline_s:.0f}s") from None
        except DataCorruption:
            raise DestinationError(f"{where}: the uploaded bytes failed GCS's checksum", permanent=False) from None
        except (RequestsConnectionError, Timeout, GoogleAuthError, ConnectionError) as e:
            raise GCS.unreachable(where, e) from None

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket}/{key}"

    def open_upload(self, key: str) -> _ResumableUpload:
        return _ResumableUpload(self, key)

    def read_bytes(self, key: str) -> bytes:
        from google.api_core import exceptions as gexc

        with self.errors("download", key):
            try:
                return self.handle.blob(key).download_as_bytes(retry=self.retry)
            except gexc.NotFound as e:
                # A missing bucket is an error; a missing object is "not exported yet".
                if "bucket" in str(e.message).lower() and "not exist" in str(e.message).lower():
                    raise
                raise FileNotFoundError(self.uri(key)) from None

    def write_small(self, key: str, data: bytes) -> None:
        with self.errors("upload", key):
            self.handle.blob(key).upload_from_string(data, content_type=content_type(key), checksum="md5", retry=self.retry)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        from google.api_core import exceptions as gexc

        with self.errors("download", key):
            blob = self.handle.get_blob(key, retry=self.retry)
            if blob is None:
                return None
            try:
                return blob.download_as_bytes(if_generation_match=blob.generation, retry=self.retry), str(blob.generation)
            except (gexc.PreconditionFailed, gexc.NotFound):
                return self.read_versioned(key)  # replaced or removed between the two requests

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        from google.api_core import exceptions as gexc

        blob = self.handle.blob(key)
        with self.errors("upload", key):
            try:
                # a precondition makes the upload idempotent, so the default retry applies
                blob.upload_from_string(
                    data, if_generation_match=0 if version is None else int(version), checksum="md5", retry=self.retry
                )
            except gexc.PreconditionFailed:  # (a 404 is the bucket's: an error)
                return None
        return str(blob.generation)

    def delete_if(self, key: str, version: str) -> bool:
        from google.api_core import exceptions as gexc

        with self.errors("delete", key):
            try:
                self.handle.blob(key).delete(if_generation_match=int(version), retry=self.retry)
            except (gexc.PreconditionFailed, gexc.NotFound):
                return False
            except gexc.Forbidden:
                raise PermissionError(self.uri(key)) from None
        return True

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as gexc

        with self.errors("delete", key):
            try:
                self.handle.blob(key).delete(retry=self.retry)
            except gexc.NotFound:
                pass
            except gexc.Forbidden:
                raise PermissionError(self.uri(key)) from None

    def exists(self, key: str) -> bool:
        with self.errors("get", key):
            return self.handle.blob(key).exists(retry=self.retry)

    def download(self, key: str, dest: Path) -> None:
        from google.api_core import exceptions as gexc

        with self.errors("download", key):
            try:
                self.handle.blob(key).download_to_filename(str(dest), retry=self.retry)
            except gexc.NotFound:
                dest.unlink(missing_ok=True)
                raise FileNotFoundError(self.uri(key)) from None

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self.errors("list", prefix):
            for blob in self.handle.client.list_blobs(self.bucket, prefix=prefix, retry=self.retry):
                yield blob.name, blob.size
