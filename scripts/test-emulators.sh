#!/usr/bin/env bash
# Emulators the test suite starts that the project's pip install cannot provide:
# - Azurite (Azure Blob) from npm (scripts/emulators/package.json);
# - the BigQuery emulator `bqemulator`, in a venv of its own: it needs duckdb 1.5.5 while the
#   project (and fakesnow) need 2.0, and DuckDB cannot download its spatial extension here,
#   so the extension is installed from its PyPI package.
set -euo pipefail
cd "$(dirname "$0")/.."

npm install --prefix scripts/emulators --no-package-lock --no-audit --no-fund

BQ_VENV=.bqemulator-venv
if [ ! -x "$BQ_VENV/bin/bqemulator" ]; then
  python3 -m venv "$BQ_VENV"
  "$BQ_VENV/bin/pip" install -q "bqemulator==1.4.0" "duckdb==1.5.5" "duckdb-extension-spatial==1.5.5" "numpy<3"
fi
"$BQ_VENV/bin/python" - <<'PY'
import pathlib

import duckdb
import duckdb_extension_spatial

ext = pathlib.Path(duckdb_extension_spatial.__file__).parent / "extensions" / "v1.5.5" / "spatial.duckdb_extension"
con = duckdb.connect()
con.install_extension(str(ext))
con.load_extension("spatial")
PY
