#!/usr/bin/env bash
# NoteContrast quick run on the synthetic corpus: `make notes` (after `make data`; stop a running
# server first — the CLI and the server cannot open the store at once).
#   1. ontovec synth-notes (1,500 notes from the store's ICD-10-CM + HPO and clinosim's data)
#   2. ingest them (once per data dir)
#   3. ontovec train notecontrast --preset quick (≤ 20 min on 2 cores; prints the eval table)
# Then `make serve` serves models/notecontrast (+ -codes) for /v1/notes/code.
#   NOTES_N (1500), NOTES_BASE (models/hiprbert-minilm if trained, else models/all-MiniLM-L6-v2),
#   NOTES_OUT (models/notecontrast).
set -euo pipefail
DATA_DIR="${1:-data/ontovec}"
BIN="${BIN:-target/release/ontovec}"
N="${NOTES_N:-1500}"
BASE="${NOTES_BASE:-}"
if [[ -z "$BASE" ]]; then
  BASE=models/all-MiniLM-L6-v2
  [[ -f models/hiprbert-minilm/ontovec.json ]] && BASE=models/hiprbert-minilm
fi
OUT="${NOTES_OUT:-models/notecontrast}"
notes="data/notes/synth-seed1-n$N.jsonl"
mkdir -p data/notes
t0=$(date +%s)
if [[ ! -s "$notes" ]]; then
  "$BIN" synth-notes --data-dir "$DATA_DIR" --n "$N" --seed 1 --out "$notes.tmp"
  mv "$notes.tmp" "$notes"
fi
marker="$DATA_DIR/.loaded-synth-seed1-n$N" # notes carry ids, not releases: load them once
if [[ ! -e "$marker" ]]; then
  # --skip-index: the server embeds the notes at start with the notes model trained below
  "$BIN" ingest --data-dir "$DATA_DIR" --format notes-jsonl --release "synth-seed1-n$N" --skip-index "$notes"
  touch "$marker"
fi
"$BIN" train notecontrast --base "$BASE" --data-dir "$DATA_DIR" --out "$OUT" --preset quick
echo "notes quick run done in $(($(date +%s) - t0)) s; model card: $OUT/MODEL_CARD.md"
