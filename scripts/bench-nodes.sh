#!/usr/bin/env bash
# One read-only API node vs two, on this machine, against one PostgreSQL + pgvector holding the
# vectors (the issue's "two replicas vs one" check). A throwaway Postgres (scripts/pg-temp.sh);
# a writer data dir that ingests HPO (data/downloads/hpo/hp.obo, `make fetch`) with its vectors
# caught up into Postgres; `snapshot create` of it; two `snapshot restore`s; two
# `serve --read-only` nodes on free 127.0.0.1 ports; then `ontovec bench load` (the repo's HTTP
# load client: one keep-alive connection per client thread, bounded request counts) against node
# 1 alone and against both (requests alternate between the nodes), lexical and vector search at
# concurrency 8 and 32. Everything is removed afterwards.
# Usage: scripts/bench-nodes.sh [ONTOVEC_BINARY] [REQUESTS_PER_CELL]
#   env: ONTOVEC_MODELS_DIR (default models), ONTOVEC_DOWNLOADS (default data/downloads),
#        NODE_ARGS (extra `serve` flags for each node)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/target/release/ontovec}")"
REQ="${2:-2000}"
MODELS="${ONTOVEC_MODELS_DIR:-$ROOT/models}"
DL="${ONTOVEC_DOWNLOADS:-$ROOT/data/downloads}"
[[ -f "$DL/hpo/hp.obo" ]] || { echo "missing $DL/hpo/hp.obo: run make fetch" >&2; exit 1; }
source "$ROOT/scripts/pg-temp.sh"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  pg_temp_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== writer: ingest HPO, vectors into Postgres" >&2
"$BIN" ingest --data-dir "$WORK/writer" --models-dir "$MODELS" --vector-store "$PGURL" \
  --format obo --release bench --system HPO "$DL/hpo/hp.obo" >&2
"$BIN" snapshot create --data-dir "$WORK/writer" --models-dir "$MODELS" --vector-store "$PGURL" "$WORK/snap.tar" >&2
URLS=()
for n in 1 2; do
  "$BIN" snapshot restore "$WORK/snap.tar" --data-dir "$WORK/node$n" >&2
  port="$(free_port)"
  # shellcheck disable=SC2086
  "$BIN" serve --data-dir "$WORK/node$n" --models-dir "$MODELS" --vector-store "$PGURL" \
    --read-only --writer-url http://127.0.0.1:1 --addr "127.0.0.1:$port" ${NODE_ARGS:-} \
    >"$WORK/node$n.log" 2>&1 &
  PIDS+=($!)
  URLS+=("http://127.0.0.1:$port")
done
for u in "${URLS[@]}"; do
  for i in $(seq 600); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      -d '{"query":"seizure","mode":"vector","k":10}' "$u/v1/search" || true)"
    [[ "$code" == 200 ]] && break
    [[ $i == 600 ]] && { echo "node $u not ready" >&2; cat "$WORK"/node*.log >&2; exit 1; }
    sleep 0.5
  done
done
echo "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "### one node"
"$BIN" bench load --url "${URLS[0]}" --modes lexical,vector --concurrency 8,32 --requests "$REQ"
echo
echo "### two nodes (requests alternate)"
"$BIN" bench load --url "${URLS[0]},${URLS[1]}" --modes lexical,vector --concurrency 8,32 --requests "$REQ"
