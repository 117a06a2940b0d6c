#!/usr/bin/env bash
# Ingest the public data laid out by scripts/fetch-data.sh into DATA_DIR (default data/ontovec).
# Idempotent: releases already loaded are skipped (--if-absent).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-data/ontovec}"
DL="${ONTOVEC_DOWNLOADS:-data/downloads}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
[ -x "$BIN" ] || { echo "build first: cargo build --release"; exit 1; }

ingest() { # format release [--system S] files...
  local fmt=$1 rel=$2; shift 2
  echo "== ingest $fmt $rel $*"
  "$BIN" ingest --data-dir "$DATA_DIR" --format "$fmt" --release "$rel" --if-absent "$@"
}
shopt -s nullglob

# Bring a store written by an older ontovec up to the current schema (no-op when current or new).
if [ -d "$DATA_DIR/store" ]; then "$BIN" migrate --data-dir "$DATA_DIR"; fi

ingest icd10cm-xml 2026-r2 "$DL"/icd10cm/*.xml
ingest icd9cm-txt v32 "$DL"/icd9cm/txt/*
ingest phecode-csv 1.2 --system PHECODE "$DL"/phecode/v1.2/phecode12.csv
ingest phecode-csv X --system PHECODEX "$DL"/phecode/X/phecodeX.csv
ingest obo 2025-01-16 --system HPO "$DL"/hpo/hp.obo
ingest loinc-csv synthea-sample --system LOINC "$DL"/loinc/*.csv
ingest rxnorm-rrf synthea-sample --system RXNORM "$DL"/rxnorm/*.RRF
