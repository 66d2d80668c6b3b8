"""The fleet against the object-store emulators (issue 22): two projects holding the same record
ids in one bucket under their own prefixes, each file only its project's; a refused destination
(a bucket that does not exist) fails its project only, and after `disable_after` runs in a row it
is disabled, the reason shown by `xeroml destinations show` and posted to the alert hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from dagster import DagsterInstance, materialize

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import XeroMLConfig
from xeroml_pipelines.defs.fleet.keys import fleet_asset_key
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.registry.entries import parse_entry
from xeroml_pipelines.registry.runs import missed_of
from xeroml_pipelines.registry.store import Registry
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.providers import PREFIX

DAY = "2025-01-15"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider) -> Iterator[Registry]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XEROML_ALLOW_ENDPOINTS", "127.0.0.1")  # the emulators
    monkeypatch.setenv("XEROML_ALLOW_ENV_REFS", "TEST_*")  # the emulators' credentials, by env var
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("XEROML_REGISTRY_URL", url)
    registry = Registry(url).create()
    yield registry
    registry.close()


def _register(registry: Registry, provider, name: str, **destination: Any) -> None:
    if provider.name == "local":  # a registered folder is relative to the working directory: tmp_path
        destination["path"] = "dest"
    where = provider.destination(prefix=f"{PREFIX}/{name}", **destination)
    registry.put([parse_entry({"name": name, "project_id": name, "start_date": "2025-01-01", "destination": where}, name)])


def _run(ch: ClickHouseResource, instance: DagsterInstance, alerts: str | None = None, **fleet: Any):
    config: dict[str, Any] = {
        "clickhouse": {"url": ch.url, "database": ch.database},
        "fleet": {"start_date": "2025-01-01", "retries": 0, "tables": ["traces"], **fleet},
    }
    if alerts:
        config["alerts"] = {"webhook_url_env": alerts}
    defs = build_definitions(XeroMLConfig.model_validate(config))
    asset = defs.get_assets_def(fleet_asset_key("daily", 0, "traces"))
    return materialize([asset], partition_key=DAY, resources=dict(defs.resources), instance=instance)


def test_each_project_s_rows_reach_its_own_prefix_only(ch: ClickHouseResource, registry: Registry, provider) -> None:
    for p in ("acme", "globex"):
        insert(
            ch, "traces", [trace("t1", f"{DAY} 10:00", project_id=p, name=p), trace("t2", f"{DAY} 11:00", project_id=p, name=p)]
        )
        _register(registry, provider, p)
    assert _run(ch, DagsterInstance.ephemeral()).success
    for p in ("acme", "globex"):
        lines = [json.loads(line) for line in (provider.get(f"{PREFIX}/{p}/traces/{DAY}.jsonl") or b"").decode().splitlines()]
        assert sorted(x["id"] for x in lines) == ["t1", "t2"]
        assert {x["project_id"] for x in lines} == {p} and {x["name"] for x in lines} == {p}
        manifest = json.loads(provider.get(f"{PREFIX}/{p}/_manifests/traces/{DAY}.json") or b"{}")
        assert manifest["rows"] == 2 and manifest["project_id"] == p
    assert provider.leftovers() == []


class _Hook(BaseHTTPRequestHandler):
    posts: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        _Hook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def alert_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.posts = []
    monkeypatch.setenv("TEST_FLEET_ALERT_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    try:
        yield _Hook.posts
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("provider", ["s3"], indirect=True)
def test_a_refused_destination_is_disabled_after_repeated_refusals(
    ch: ClickHouseResource, registry: Registry, provider, alert_hook: list[dict], tmp_path: Path
) -> None:
    insert(ch, "traces", [trace(f"t{i}", f"{DAY} 10:00", project_id=p) for p in ("acme", "gone") for i in range(2)])
    _register(registry, provider, "acme")
    _register(registry, provider, "gone", bucket="xeroml-no-such-bucket")
    instance = DagsterInstance.ephemeral()
    for attempt in (1, 2):
        assert _run(ch, instance, alerts="TEST_FLEET_ALERT_URL", disable_after=2).success
        assert provider.get(f"{PREFIX}/acme/traces/{DAY}.jsonl")
        gone = registry.get("gone")
        assert gone.consecutive_failures == (attempt if attempt < 2 else 2)
    assert not gone.entry.enabled and gone.disabled_by == "platform"
    assert "disabled after 2 runs in a row" in (gone.disabled_reason or "") and "xeroml-no-such-bucket" in gone.disabled_reason
    (post,) = alert_hook
    assert "gone" in post["text"] and "xeroml-no-such-bucket" in post["text"]
    assert [m.partition for m in missed_of(registry, "gone")] == [DAY]

    shown = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "destinations", "show", "gone"],
        capture_output=True,
        text=True,
        env={**os.environ},
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "state: disabled by the platform" in shown.stdout and "xeroml-no-such-bucket" in shown.stdout
    assert f"missed: traces {DAY}" in shown.stdout

    # disabled: the next run skips it (no third refusal), and records the window as missed
    assert _run(ch, instance, disable_after=2).success
    assert registry.get("gone").consecutive_failures == 2


@pytest.mark.parametrize("provider", ["s3"], indirect=True)
def test_an_endpoint_inside_the_platform_is_refused_again_at_run_time(
    ch: ClickHouseResource, registry: Registry, provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Allowed when registered (the operator's allowance then), refused when the run finds it no
    longer allowed: that project's export only, with the reason; the others are written."""
    insert(ch, "traces", [trace("t1", f"{DAY} 10:00", project_id=p) for p in ("acme", "inside")])
    _register(registry, provider, "inside")
    monkeypatch.setenv("XEROML_ALLOW_ENDPOINTS", "")
    registry.put(
        [
            parse_entry(
                {
                    "name": "acme",
                    "project_id": "acme",
                    "start_date": "2025-01-01",
                    "destination": {"provider": "local", "path": "a"},
                },
                "acme",
            )
        ]
    )
    instance = DagsterInstance.ephemeral()
    assert _run(ch, instance).success
    (missed,) = missed_of(registry, "inside")
    assert "destination.endpoint_url" in (missed.error or "") and "127.0.0.1" in (missed.error or "")
    assert provider.get(f"{PREFIX}/inside/traces/{DAY}.jsonl") is None
    assert registry.get("inside").consecutive_failures == 1  # a refusal: it counts toward disabling
