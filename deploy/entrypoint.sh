#!/bin/sh
# Each Docker/Kubernetes secret file in $SECRETS_DIR (default /run/secrets) becomes the env var of
# its name, so the configuration's `*_env` fields and dagster.yaml's `{env: ...}` read it, and no
# secret sits in a plaintext .env or in the image. A variable already set is left as it is.
set -eu
dir="${SECRETS_DIR:-/run/secrets}"
if [ -d "$dir" ]; then
  for file in "$dir"/*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    case "$name" in *[!A-Za-z0-9_]*|[0-9]*) continue ;; esac   # not a variable name
    if [ -z "$(printenv "$name" || true)" ]; then
      value=$(cat "$file")
      export "$name=$value"
    fi
  done
fi
exec "$@"
