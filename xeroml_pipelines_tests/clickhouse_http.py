"""A ClickHouse HTTP interface in front of chDB, for the tests of the HTTP client path.

A ClickHouse server cannot run on this machine, but its engine can (chDB). This serves the part of
ClickHouse's HTTP protocol that clickhouse-connect uses (query in the URL and/or the POST body,
`database`, `param_*` bindings, settings as URL parameters, basic auth, `X-ClickHouse-*`
headers, exceptions as `Code: N. DB::Exception: ...` with a non-200 status) and streams each
result as ClickHouse does: chunked, block by block, as the engine produces them.

    python -m xeroml_pipelines_tests.clickhouse_http --path DIR --port N [--password-env VAR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

import chdb
import pyarrow as pa

# Transport-level parameters clickhouse-connect sends; a server does not treat them as query settings.
_TRANSPORT = {
    "query",
    "database",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "default_format",
    "user",
    "password",
    "quota_key",
    "buffer_size",
    "wait_end_of_query",
    "client_protocol_version",
    "role",
    "enable_http_compression",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close",
    "http_zlib_compression_level",
}
_CODE = re.compile(r"Code: (\d+)\.")
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*(?:SETTINGS\b.*)?;?\s*$", re.IGNORECASE | re.DOTALL)
_STREAMED = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        if urlparse(self.path).path in ("/ping", "/"):
            self._reply(200, b"Ok.\n")
        else:
            self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, message: str, status: int = 500) -> None:
        code = _CODE.search(message)
        text = message[message.index("Code:") :] if "Code:" in message else f"Code: 1001. DB::Exception: {message}"
        self._reply(status, text.encode() + b"\n", {"X-ClickHouse-Exception-Code": code.group(1) if code else "1001"})

    def _authenticated(self) -> bool:
        user, password = self.headers.get("X-ClickHouse-User", "default"), self.headers.get("X-ClickHouse-Key", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return user == "default" and password == self.server.password

    def _handle(self) -> None:
        params = dict(parse_qsl(urlparse(self.path).query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if not self._authenticated():
            self._error(
                "Code: 516. DB::Exception: default: Authentication failed: password is incorrect, "
                "or there is no user with such name. (AUTHENTICATION_FAILED)",
                403,
            )
            return
        sql = " ".join(part for part in (params.get("query", ""), body) if part).strip()
        bindings = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
        fmt_match = _FORMAT.search(sql)
        fmt = fmt_match.group(1) if fmt_match else params.get("default_format", "TabSeparated")
        with self.server.engine_lock:
            conn = self.server.conn
            try:
                self._run(conn, sql, fmt, params, bindings, settings)
            finally:
                for k in settings:
                    conn.query(f"SET `{k}` = DEFAULT")
                conn.query("USE default")

    def _run(self, conn, sql: str, fmt: str, params: dict[str, str], bindings: dict[str, str], settings: dict[str, str]) -> None:
        try:
            if database := params.get("database"):  # resolved per request, as a server does: it must exist
                conn.query(f"USE `{database}`")
            for k, v in settings.items():
                conn.query(f"SET `{k}` = '{v}'")
            if _STREAMED.match(sql):
                result = conn.send_query(sql, fmt, params=bindings)
            else:  # DDL and INSERT ... SELECT: chDB streams only queries
                result = _Whole(conn.query(sql, fmt, params=bindings).bytes())
            chunk = result.fetch()
        except Exception as e:  # noqa: BLE001 - every engine error goes to the client as ClickHouse sends it
            self._error(str(e), 404 if "UNKNOWN_TABLE" in str(e) or "UNKNOWN_DATABASE" in str(e) else 500)
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Timezone", "UTC")
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb-http")
        self.send_header("X-ClickHouse-Query-Id", params.get("query_id", str(uuid.uuid4())))
        self.send_header("X-ClickHouse-Summary", json.dumps({"read_rows": "0", "written_rows": "0"}))
        self.end_headers()
        sink = _ChunkedSink(self._chunk)
        writer: pa.ipc.RecordBatchStreamWriter | None = None
        try:
            while chunk is not None:
                data = chunk.bytes()
                if data and fmt == "ArrowStream":
                    # chDB hands each block as a whole IPC stream; a server sends one stream
                    reader = pa.ipc.open_stream(data)
                    writer = writer or pa.ipc.new_stream(sink, reader.schema)
                    for batch in reader:
                        writer.write_batch(batch)
                elif data:
                    self._chunk(data)
                chunk = result.fetch()
            if writer is not None:
                writer.close()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            result.cancel()
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a server cuts the stream and says why at its end
            code = _CODE.search(str(e))
            self._chunk(f"\nCode: {code.group(1) if code else 1001}. DB::Exception: {e}\n".encode())
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


class _Whole:
    """A non-streamed result, fetched like a stream: one chunk, then None."""

    def __init__(self, data: bytes) -> None:
        self._chunks = [_Bytes(data)]

    def fetch(self) -> _Bytes | None:
        return self._chunks.pop() if self._chunks else None

    def cancel(self) -> None:
        pass


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def bytes(self) -> bytes:
        return self._data


class _ChunkedSink:
    """A file for Arrow's stream writer that sends each write as one HTTP chunk."""

    closed = False

    def __init__(self, send) -> None:
        self._send = send

    def write(self, data) -> int:
        self._send(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], path: str, password: str) -> None:
        super().__init__(address, _Handler)
        self.conn = chdb.connect(path)
        self.engine_lock = threading.Lock()  # one engine session: queries take turns
        self.password = password


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password-env", help="env var holding the password of user 'default' (none: empty)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM) ...")
    parser.add_argument("--tls-key", help="... and its private key (PEM)")
    args = parser.parse_args()
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    server = _Server(("127.0.0.1", args.port), args.path, password)
    if args.tls_cert:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
