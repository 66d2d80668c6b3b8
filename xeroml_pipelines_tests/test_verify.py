"""`verify`: the destination listed against the manifests, on every provider, as a function, an
asset check and a CLI command."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from dagster import AssetKey, AssetSelection, materialize

from xeroml_pipelines.definitions import build_definitions
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.verify import verify
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.providers import PREFIX, Provider
from xeroml_pipelines_tests.support import Exporter


def test_verify_finds_missing_orphan_and_resized_objects(exporter: Exporter, provider: Provider) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00"), trace("b", "2025-01-16 10:00")])
    for day in ("2025-01-14", "2025-01-15", "2025-01-16"):
        exporter.run(day, tables=("traces",), destination=provider.destination())
    export = exporter.config(destination=provider.destination()).exports[0]
    with export.destination.resource().process_config_and_initialize_cm() as destination:
        layout = Layout(destination.prefix)
        report = verify(destination, layout, "traces", deep=True)
        assert report.ok and report.manifests == 3 and report.objects == 2

        provider.put(f"{PREFIX}/traces/2025-01-15.jsonl", b'{"id":"a"}\n')  # rewritten behind our back
        provider.put(f"{PREFIX}/traces/2025-01-20.jsonl", b'{"id":"x"}\n')  # no manifest
        provider.put(f"{PREFIX}/traces/2025-01-21.jsonl", b"")  # an emptied stale file is fine
        report = verify(destination, layout, "traces")
    assert len(report.problems) == 2, report.problems
    assert any("2025-01-15.jsonl" in p and "manifest says" in p for p in report.problems)
    assert any("2025-01-20.jsonl" in p and "without a manifest" in p for p in report.problems)


def test_asset_check_reports_through_dagster(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    defs = build_definitions(exporter.config(tables=("traces",)))
    asset = defs.get_assets_def(AssetKey(["exp", "traces"]))
    (check,) = [
        c for c in defs.asset_checks if {(k.asset_key, k.name) for k in c.check_keys} == {(asset.key, "files_match_manifests")}
    ]
    result = materialize([asset, check], partition_key="2025-01-15", resources=defs.resources)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["manifests"].value == 1

    (exporter.out / "traces" / "2025-01-15.jsonl").unlink()
    (exporter.out / "traces" / "2025-01-09.jsonl").write_bytes(b"{}\n")
    result = materialize([asset, check], selection=AssetSelection.all_asset_checks(), resources=defs.resources)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["problems"].value == 2
    assert "2025-01-15.jsonl" in evaluation.description and "2025-01-09.jsonl" in evaluation.description


def test_cli_verify(exporter: Exporter, tmp_path) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    config = exporter.config(tables=("traces",)).model_dump(mode="json")
    path = tmp_path / "exports.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "XEROML_CONFIG": str(path)}
    # a separate process: chDB is not opened by verify, only the destination is read
    ok = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert "exp/traces: 1 manifests, 1 objects: ok" in ok.stdout
    (exporter.out / "traces" / "2025-01-15.jsonl").unlink()
    bad = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "missing" in bad.stdout
