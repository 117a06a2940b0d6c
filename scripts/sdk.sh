#!/usr/bin/env bash
# Generated SDKs against a live server: a Python client generated from openapi.yaml with
# openapi-python-client (PyPI) and a TypeScript client from openapi-typescript + openapi-fetch
# (npm), both generated here at test time into a scratch directory (never committed, never
# hand-edited). Each one ingests a fixture over HTTP, polls the job, searches, normalizes and
# scores relatedness (scripts/sdk/test_sdk.py, scripts/sdk/test_sdk.ts).
#
# Usage: scripts/sdk.sh [python|ts]...   (default: both)
set -euo pipefail
source "$(dirname "$0")/live-server.sh"

want=("$@")
[[ ${#want[@]} -eq 0 ]] && want=(python ts)
SPEC="$ROOT/openapi.yaml"
FIXTURE="$ROOT/ontologies/obo/hpo-sample.obo"
live_server_start
export ONTOVEC_URL ONTOVEC_TOKEN FIXTURE
gen="$SCRATCH/sdk"
mkdir -p "$gen"

run_python() {
  local t0=$(date +%s)
  py_venv sdk-python "openapi-python-client==0.29.1"
  "$VENV/bin/openapi-python-client" generate --path "$SPEC" --output-path "$gen/python" \
    --meta setup --overwrite --config "$ROOT/scripts/sdk/openapi-python-client.yaml" >/dev/null
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$gen/python"
  "$VENV/bin/python" "$ROOT/scripts/sdk/test_sdk.py"
  echo "python SDK: ok ($(($(date +%s) - t0)) s)"
}

run_ts() {
  local t0=$(date +%s) npmdir="$CACHE/npm-sdk"
  command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are required" >&2; return 1; }
  mkdir -p "$npmdir"
  if ! cmp -s "$ROOT/scripts/sdk/package.json" "$npmdir/package.json"; then
    cp "$ROOT/scripts/sdk/package.json" "$npmdir/package.json"
    (cd "$npmdir" && npm install --no-audit --no-fund --silent)
  fi
  local ts="$gen/ts"
  mkdir -p "$ts"
  ln -sfn "$npmdir/node_modules" "$ts/node_modules"
  "$npmdir/node_modules/.bin/openapi-typescript" "$SPEC" -o "$ts/ontovec.d.ts" --silent
  cp "$ROOT/scripts/sdk/test_sdk.ts" "$ROOT/scripts/sdk/tsconfig.json" "$ts/"
  echo '{"type": "module"}' >"$ts/package.json"
  # Type-check against the generated types, then run.
  (cd "$ts" && "$npmdir/node_modules/.bin/tsc" -p tsconfig.json)
  node "$ts/out/test_sdk.js"
  echo "typescript SDK: ok ($(($(date +%s) - t0)) s)"
}

for w in "${want[@]}"; do
  case "$w" in
    python) run_python ;;
    ts) run_ts ;;
    *) echo "unknown SDK $w (python|ts)" >&2; exit 2 ;;
  esac
done
