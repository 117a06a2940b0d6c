#!/usr/bin/env bash
# Contract test: schemathesis (PyPI, installed into a venv under ~/.cache/ontovec) against the
# live server's /openapi.json with the fixture ontologies loaded and the base model serving:
# every operation, at least 100 generated examples each, every check (server errors, status
# codes, content types, headers, response schemas, negative-data rejection, positive-data
# acceptance, auth, unsupported methods, ...). Any failure fails the script.
# The notes endpoints run against the notes fixture (scripts/live-server.sh); without a trained
# notes model, /v1/notes/code answers with its zero-shot ranking.
#
# It runs twice on the same data, once per server configuration:
#   token — `serve --auth-token …`: the served document declares bearer auth on the writes
#           (it is the committed openapi.yaml) and schemathesis sends the token;
#   none  — `serve` as README starts it, no token: the served document declares no security
#           (writes are open), and schemathesis sends no Authorization header.
#
# Usage: scripts/contract.sh [extra schemathesis args]
#   CONTRACT_AUTH (default "token none": which configurations, in order),
#   CONTRACT_EXAMPLES (default 100), CONTRACT_SEED (default 20261124; "random" for a new one),
#   ONTOVEC_PROFILE=release to test a release build.
set -euo pipefail
source "$(dirname "$0")/live-server.sh"

SCHEMATHESIS_VERSION=4.32.5
py_venv contract "schemathesis==$SCHEMATHESIS_VERSION"
live_server_prepare

EXAMPLES="${CONTRACT_EXAMPLES:-100}"
SEED="${CONTRACT_SEED:-20261124}"
seed_args=(--seed "$SEED")
[[ "$SEED" == random ]] && seed_args=()

# One schemathesis run against a server in configuration $1; returns its verdict.
contract_run() { # token|none [extra args]
  local auth="$1" rc=0 auth_args=()
  shift
  live_server_run "$auth"
  [[ -n "$ONTOVEC_TOKEN" ]] && auth_args=(--header "Authorization: Bearer $ONTOVEC_TOKEN")
  local report="${CONTRACT_REPORT_DIR:-$SCRATCH/report}/$auth"
  mkdir -p "$report"
  local t0
  t0=$(date +%s)
  echo "== contract, server configuration: $auth"
  # schemathesis keeps its example database in the working directory
  (cd "$SCRATCH" && "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" \
    run "$ONTOVEC_URL/openapi.json" \
    --checks all \
    --max-examples "$EXAMPLES" \
    "${seed_args[@]}" \
    "${auth_args[@]}" \
    --request-timeout 60 \
    --max-response-time 30 \
    --workers 1 \
    --suppress-health-check too_slow \
    --report junit,ndjson --report-dir "$report" \
    "$@") || rc=$?
  echo "schemathesis ($auth) finished in $(($(date +%s) - t0)) s with exit code $rc"
  # Per-operation counts; fails when an operation with inputs got fewer than $EXAMPLES cases.
  "$VENV/bin/python" "$ROOT/scripts/contract_summary.py" "$(ls -t "$report"/ndjson-*.ndjson | head -1)" "$EXAMPLES" || rc=1
  if ((rc != 0)); then
    echo "--- last server log lines ($auth)"
    tail -30 "$SCRATCH/server.log"
  fi
  # A server that crashed or panicked under the contract run fails it as well.
  if grep -q "panicked" "$SCRATCH/server.log"; then
    echo "the server ($auth) panicked during the contract run:" >&2
    grep -A3 "panicked" "$SCRATCH/server.log" | head -20 >&2
    rc=1
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server ($auth) died during the contract run" >&2; rc=1; }
  live_server_stop_server
  return "$rc"
}

status=0
for auth in ${CONTRACT_AUTH:-token none}; do
  contract_run "$auth" "$@" || status=1
done
exit "$status"
