"""ClickHouse as a Dagster resource: a ClickHouse server over HTTP(S) or the embedded chDB engine.

Both go through clickhouse-connect's `Client` (chDB registers the `chdb://` backend there), so
DDL, inserts and small queries share one code path. Streaming Arrow is the one exception:
clickhouse-connect's chDB backend materializes a whole result before its first batch, so for
`chdb://` the stream comes from chDB's own `send_query(..., "Arrow")`, its blocks read in place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import clickhouse_connect
import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.binding import format_bind_value
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from dagster import ConfigurableResource
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from xeroml_pipelines.clickhouse.errors import EmbeddedEngineBusy, engine_locked, unreachable
from xeroml_pipelines.credentials import from_env
from xeroml_pipelines.identifiers import ClickHouseUrl, DatabaseName, EnvVarName
from xeroml_pipelines.sql.source_tables import create_schema_sql

T = TypeVar("T")


class ClickHouseResource(ConfigurableResource):
    """Where XeroML's tables live: the configuration's `clickhouse:` validates straight into it."""

    model_config = ConfigDict(extra="forbid")

    url: ClickHouseUrl = Field(description="https://host:8443, http://host:8123 (plain HTTP, opted into), or chdb:///abs/path")
    user: str = "default"
    password_env: EnvVarName | None = Field(default=None, description="Name of the env var holding the password")
    database: DatabaseName = "default"
    batch_rows: int = Field(default=8_192, ge=1, description="Rows per ClickHouse block: the unit a partition streams in")
    embedded_wait_s: float = Field(
        default=120, ge=0, description="chDB only: how long to wait while another process holds the engine"
    )
    connect_timeout_s: float = Field(default=5, gt=0, description="How long one attempt to connect may take")
    connect_retry_s: float = Field(
        default=20, ge=0, description="How long connecting is retried before the run fails (a restarting server)"
    )
    read_timeout_s: float = Field(
        default=300, gt=0, description="How long the server may send nothing (a query's first block included)"
    )
    ca_cert_file: str | None = Field(default=None, description="https: the CA bundle (PEM) that signed the server's certificate")
    verify_tls: bool = Field(default=True, description="https: check the server's certificate (false only for a test server)")

    @model_validator(mode="after")
    def _tls(self) -> ClickHouseResource:
        if self.ca_cert_file and not Path(self.ca_cert_file).is_file():
            raise ValueError(f"ca_cert_file: {self.ca_cert_file} is not a readable file")
        if (self.ca_cert_file or not self.verify_tls) and not self.url.startswith("https:"):
            raise ValueError("ca_cert_file and verify_tls apply to an https:// url only")
        return self

    _client: Client | None = PrivateAttr(default=None)

    @property
    def is_embedded(self) -> bool:
        return self.url.startswith("chdb:")

    @property
    def chdb_path(self) -> str:
        return os.path.realpath(urlparse(self.url).path)

    def get_client(self) -> Client:
        if self._client is None:
            if self.is_embedded:
                os.makedirs(self.chdb_path, exist_ok=True)
                self._client = self._wait_for_engine(lambda: clickhouse_connect.get_client(dsn=f"chdb://{self.chdb_path}"))
            else:
                self._client = self._connect()
        return self._client

    def _connect(self) -> Client:
        """A client of the server, retried while it does not answer (refused, timed out, name
        unknown) for `connect_retry_s`; then one error naming the host and the reason."""
        parsed = urlparse(self.url)
        host, port = parsed.hostname, parsed.port or (8443 if parsed.scheme == "https" else 8123)
        password = from_env(self.password_env, "clickhouse.password_env") or ""
        started, delay, attempts = time.monotonic(), 1.0, 0
        while True:
            attempts += 1
            try:
                return clickhouse_connect.get_client(
                    host=host,
                    port=port,
                    interface=parsed.scheme,
                    username=self.user,
                    password=password,
                    database=self.database,
                    connect_timeout=self.connect_timeout_s,
                    send_receive_timeout=self.read_timeout_s,
                    ca_cert=self.ca_cert_file,
                    verify=self.verify_tls,
                )
            except OperationalError as e:
                elapsed = time.monotonic() - started
                if elapsed + delay > self.connect_retry_s:
                    raise unreachable(f"{parsed.scheme}://{host}:{port}", e, attempts, elapsed) from e
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _wait_for_engine(self, open_engine: Callable[[], T]) -> T:
        """chDB locks its folder to one process at a time: a run, the late-data sensor, or the
        CLI. Another process holding it is waited for, not failed on."""
        deadline = time.monotonic() + self.embedded_wait_s
        delay = 0.2
        while True:
            try:
                return open_engine()
            except Exception as e:
                if not engine_locked(e) or time.monotonic() >= deadline:
                    if engine_locked(e):
                        raise EmbeddedEngineBusy(
                            f"the embedded ClickHouse at {self.chdb_path} is held by another process "
                            f"for more than {self.embedded_wait_s:.0f}s"
                        ) from None
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        """Release the connection (on chDB: the engine's lock, for other processes)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def create_schema(self) -> None:
        client = self.get_client()
        for statement in create_schema_sql(self.database):
            client.command(statement)

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        row = self.get_client().query(sql, parameters=parameters).first_row
        assert row is not None, "a scalar query returns one row"
        return row[0]

    @contextmanager
    def stream_arrow(self, sql: str, parameters: dict[str, Any]) -> Iterator[Iterator[pa.RecordBatch]]:
        """Yield an iterator of Arrow batches; the query is cancelled/closed when the block exits."""
        if self.is_embedded:
            import chdb

            self.get_client()  # the engine path is opened (and created) once, through one place
            conn = self._wait_for_engine(lambda: chdb.connect(self.chdb_path))
            result = None
            try:
                result = conn.send_query(sql, "Arrow", params=_chdb_parameters(parameters))
                yield _chdb_batches(result)
            finally:
                if result is not None:
                    result.close()
                conn.close()
        else:
            with self.get_client().query_arrow_stream(sql, parameters=parameters) as stream:
                yield iter(stream)  # record batches, as the server sends its blocks (`max_block_size`)

    def teardown_after_execution(self, context) -> None:
        self.close()


def _chdb_batches(result: Any) -> Iterator[pa.RecordBatch]:
    """The blocks of a chDB stream as Arrow batches, as ClickHouse made them (`max_block_size`).

    Each fetched block is an Arrow IPC file, read in place: its buffer keeps the fetched result
    alive for as long as any batch uses it, so nothing is copied out of chDB (a copy of every
    block cost ~0.3 s per 500 MB on two cores). chdb's own `record_batch()` copies it twice.
    """
    while (chunk := result.fetch()) is not None:
        view = chunk.get_memview().view()
        if not len(view):
            continue
        address = np.frombuffer(view, dtype=np.uint8).ctypes.data
        reader = pa.ipc.open_file(pa.foreign_buffer(address, len(view), base=chunk))
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _chdb_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """chDB takes a parameter's value as ClickHouse text: an array as its literal, as the HTTP
    client sends it."""
    return {k: format_bind_value(v, None) if isinstance(v, list | tuple) else v for k, v in parameters.items()}
