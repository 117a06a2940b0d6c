# Sourced by scripts/contract.sh and scripts/sdk.sh: build ontovec, ingest the fixture
# ontologies (ontologies/) and then the MIMIC-III-layout notes fixture (ontologies/notes/mimic/,
# 33 notes with ids 100-133) into a scratch data directory with the base model, and run a
# server on a free 127.0.0.1 port until the calling script exits.
#
# `live_server_start [token|none]` = `live_server_prepare` (build + ingest, once) then
# `live_server_run [token|none]`: with `token` (the default) the server is started with
# `--auth-token` (writes need it), with `none` it is started the way README starts it, without
# one. `live_server_stop_server` stops the server and keeps the data, so a script can run the
# same data in both configurations.
#
# After `live_server_run`: $ONTOVEC_URL, $ONTOVEC_TOKEN (bearer token for writes; empty without
# one), $SCRATCH.
# Environment: ONTOVEC_PROFILE=release to test a release build (default: debug, which `cargo
# test` has already built), PYTHON (default python3).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ontovec"
MODEL="$ROOT/models/all-MiniLM-L6-v2"

live_server_build() {
  # Debug: what `cargo test` builds (it builds the binary too, for the integration tests), so
  # after `cargo test` this is a no-op; `cargo build --bin ontovec` alone would resolve
  # dependency features without the dev-dependencies and rebuild candle, tantivy, ... a second
  # time. Release: the binary.
  local profile="${ONTOVEC_PROFILE:-debug}"
  if [[ "$profile" == release ]]; then
    (cd "$ROOT" && cargo build --quiet --release --bin ontovec)
  else
    (cd "$ROOT" && cargo test --quiet --no-run 2>/dev/null) ||
      (cd "$ROOT" && cargo test --no-run) # again, to show why it failed
  fi
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  BIN="$target/$profile/ontovec"
  [[ -x "$BIN" ]] || { echo "no binary at $BIN" >&2; return 1; }
}

# A venv under the cache directory with the given PyPI packages (pinned by the caller).
py_venv() { # name pkg==ver...
  local name="$1"; shift
  VENV="$CACHE/venv-$name"
  local stamp="$VENV/.installed" want="$*"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
    printf '%s' "$want" >"$stamp"
  fi
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

live_server_stop_server() {
  if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

live_server_stop() {
  live_server_stop_server
  [[ -n "${SCRATCH:-}" ]] && rm -rf "$SCRATCH"
}

live_server_start() {
  live_server_prepare
  live_server_run "${1:-token}"
}

live_server_prepare() {
  [[ -f "$MODEL/model.safetensors" ]] || {
    echo "missing $MODEL: run scripts/fetch-data.sh --model-only" >&2
    return 1
  }
  live_server_build
  SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/ontovec-live.XXXXXX")"
  trap live_server_stop EXIT
  local data="$SCRATCH/data" models="$SCRATCH/models" fx="$ROOT/ontologies"
  # Only the base model: the contract must not depend on what else sits in models/. Hard links
  # (a symlink where they cannot be made) keep the files even if models/ is re-fetched meanwhile.
  mkdir -p "$models"
  cp -rl "$(cd "$MODEL" && pwd -P)" "$models/all-MiniLM-L6-v2" 2>/dev/null ||
    { rm -rf "$models/all-MiniLM-L6-v2"; ln -s "$MODEL" "$models/all-MiniLM-L6-v2"; }
  ingest() {
    "$BIN" ingest --data-dir "$data" --models-dir "$models" "$@" >/dev/null 2>>"$SCRATCH/ingest.log" ||
      { echo "fixture ingest failed: $*" >&2; tail -20 "$SCRATCH/ingest.log" >&2; return 1; }
  }
  export ONTOVEC_LOG=warn
  ingest --format icd10cm-xml --release 2026 "$fx/icd10cm/icd10cm-tabular-sample.xml"
  ingest --format obo --release 2025 --system HPO "$fx/obo/hpo-sample.obo"
  ingest --format phecode-csv --release 1.2 --system PHECODE \
    "$fx/phecode/phecode_definitions1.2.csv" "$fx/phecode/Phecode_map_v1_2_icd9_icd10cm_sample.csv"
  ingest --format icd9cm-txt --release v32 "$fx"/icd9cm/*.txt
  ingest --format loinc-csv --release sample --system LOINC "$fx"/loinc/*.csv
  ingest --format rxnorm-rrf --release sample --system RXNORM "$fx"/rxnorm/*.RRF
  ingest --format umls-rrf --release sample "$fx"/umls/*.RRF
  # Notes after the ICD releases, so that note search and ICD coding work on real notes.
  ingest --format mimic-notes-csv --release fixture "$fx"/notes/mimic/*.csv
}

live_server_run() { # [token|none]
  local auth="${1:-token}" port token_args=()
  port="$(free_port)"
  ONTOVEC_URL="http://127.0.0.1:$port"
  ONTOVEC_TOKEN=
  case "$auth" in
  token)
    ONTOVEC_TOKEN="live-$(date +%s)-$$"
    token_args=(--auth-token "$ONTOVEC_TOKEN")
    ;;
  none) ;;
  *) echo "live_server_run: token or none, not '$auth'" >&2; return 1 ;;
  esac
  local data="$SCRATCH/data" models="$SCRATCH/models"
  # ONTOVEC_AUTH_TOKEN from the caller's environment must not configure the tokenless run.
  env -u ONTOVEC_AUTH_TOKEN ONTOVEC_LOG="${ONTOVEC_SERVER_LOG:-info,tantivy=warn,sled=warn}" \
    "$BIN" serve --data-dir "$data" --models-dir "$models" --addr "127.0.0.1:$port" \
    "${token_args[@]}" >"$SCRATCH/server.log" 2>&1 &
  SERVER_PID=$!
  # LIVE_SERVER_WAIT_SECS: how long to wait for readiness (each terms model embeds the store).
  for _ in $(seq 1 $((${LIVE_SERVER_WAIT_SECS:-120} * 5))); do
    if curl -fs "$ONTOVEC_URL/ready" >/dev/null 2>&1 &&
      grep -q "indexes caught up" "$SCRATCH/server.log"; then
      echo "server ready at $ONTOVEC_URL (pid $SERVER_PID, data $data)"
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "server did not become ready:" >&2
  tail -40 "$SCRATCH/server.log" >&2
  return 1
}
