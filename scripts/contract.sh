#!/usr/bin/env bash
# Contract test: schemathesis (PyPI, installed into a venv under ~/.cache/ontovec) against the
# live server's /openapi.json with the fixture ontologies loaded and the base model serving:
# every operation, at least 100 generated examples each, every check (server errors, status
# codes, content types, headers, response schemas, negative-data rejection, positive-data
# acceptance, auth, unsupported methods, ...). Any failure fails the script.
# The notes endpoints run against the notes fixture (scripts/live-server.sh); without a trained
# notes model, /v1/notes/code answers with its zero-shot ranking.
#
# Usage: scripts/contract.sh [extra schemathesis args]
#   CONTRACT_EXAMPLES (default 100), CONTRACT_SEED (default 20261124; "random" for a new one),
#   ONTOVEC_PROFILE=release to test a release build.
set -euo pipefail
source "$(dirname "$0")/live-server.sh"

SCHEMATHESIS_VERSION=4.32.5
py_venv contract "schemathesis==$SCHEMATHESIS_VERSION"
live_server_start

EXAMPLES="${CONTRACT_EXAMPLES:-100}"
SEED="${CONTRACT_SEED:-20261124}"
seed_args=(--seed "$SEED")
[[ "$SEED" == random ]] && seed_args=()
report="${CONTRACT_REPORT_DIR:-$SCRATCH/report}"
mkdir -p "$report"
t0=$(date +%s)
cd "$SCRATCH" # schemathesis keeps its example database in the working directory
set +e
"$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$ONTOVEC_URL/openapi.json" \
  --checks all \
  --max-examples "$EXAMPLES" \
  "${seed_args[@]}" \
  --header "Authorization: Bearer $ONTOVEC_TOKEN" \
  --request-timeout 60 \
  --max-response-time 30 \
  --workers 1 \
  --suppress-health-check too_slow \
  --report junit,ndjson --report-dir "$report" \
  "$@"
rc=$?
set -e
echo "schemathesis finished in $(($(date +%s) - t0)) s with exit code $rc"
# Per-operation counts; fails when an operation with inputs got fewer than $EXAMPLES cases.
"$VENV/bin/python" "$ROOT/scripts/contract_summary.py" "$(ls -t "$report"/ndjson-*.ndjson | head -1)" "$EXAMPLES" || rc=1
if ((rc != 0)); then
  echo "--- last server log lines"
  tail -30 "$SCRATCH/server.log"
fi
# A server that crashed or panicked under the contract run fails it as well.
if grep -q "panicked" "$SCRATCH/server.log"; then
  echo "the server panicked during the contract run:" >&2
  grep -A3 "panicked" "$SCRATCH/server.log" | head -20 >&2
  rc=1
fi
kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server died during the contract run" >&2; rc=1; }
exit "$rc"
