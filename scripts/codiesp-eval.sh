#!/usr/bin/env bash
# NoteContrast on CodiEsp (CLEF eHealth 2020, CodiEsp-D; English machine translation of Spanish
# clinical case reports coded in ICD-10-CM by professional coders; CC BY 4.0): `make codiesp`.
#   1. a data dir with only what coding needs: ICD-10-CM (store only, no term embedding)
#   2. CodiEsp train + dev as notes (`--format codiesp`; meta.split keeps the corpus's split)
#   3. ontovec train notecontrast --preset quick on CodiEsp train, tuned and reported on dev,
#      over every ICD-10-CM code of the store; prints the tables (BM25, zero-shot, trained)
#   CODIESP_AUGMENT=1 also loads the synthetic corpus (data/notes/synth-seed1-n1500.jsonl,
#   `make notes` writes it) as training augmentation.
#   CODIESP_BUDGET sets the training budget in seconds: default 1200 (the issue's 20-minute quick
#   budget, which the frozen 800 steps fit: 524 s here; the quick preset's own 8-minute cap would
#   stop them near step 730); `none` lifts it (the tuned top layer, CODIESP_ENCODER_LAYERS=1,
#   took 1,615 s for 800 steps). The budget is not part of the run's fingerprint, so a stopped
#   run resumes. CODIESP_KEEP=1 keeps the checkpoint after the run: the same command then skips
#   training and only re-evaluates (after a change to the ranking, say).
#   CODIESP_ENCODER_LAYERS=k also fine-tunes the note encoder's top k layers (default 0:
#   frozen; README, Notes → CodiEsp, says what one layer cost and gave).
# The corpus is not downloaded here (see ontologies/SOURCES.md): put train/ and dev/ under
# CODIESP_DIR (default data/codiesp). The test split is held out: never load it.
#   usage: scripts/codiesp-eval.sh [DATA_DIR] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-data/codiesp-store}"
OUT="${2:-models/notecontrast-codiesp}"
BIN="${BIN:-target/release/ontovec}"
SRC="${CODIESP_DIR:-data/codiesp}"
DL="${ONTOVEC_DOWNLOADS:-data/downloads}"
BASE="${NOTES_BASE:-models/all-MiniLM-L6-v2}"
AUGMENT="${CODIESP_AUGMENT:-0}"
BUDGET="${CODIESP_BUDGET:-1200}"
KEEP="${CODIESP_KEEP:-0}"
LAYERS="${CODIESP_ENCODER_LAYERS:-0}"
[[ "$LAYERS" =~ ^[0-9]+$ ]] || { echo "CODIESP_ENCODER_LAYERS must be a number of layers, not $LAYERS"; exit 1; }
for s in train dev; do
  [[ -s "$SRC/$s/${s}D.tsv" ]] || { echo "missing $SRC/$s/${s}D.tsv: see ontologies/SOURCES.md (CodiEsp)"; exit 1; }
done
[[ -e "$SRC/test" ]] && echo "note: $SRC/test is ignored (held out)"
t0=$(date +%s)
"$BIN" ingest --data-dir "$DATA_DIR" --format icd10cm-xml --release 2026 --if-absent --skip-index "$DL"/icd10cm/*.xml
if [[ ! -e "$DATA_DIR/.loaded-codiesp" ]]; then
  "$BIN" ingest --data-dir "$DATA_DIR" --format codiesp --release codiesp --skip-index "$SRC/train" "$SRC/dev"
  touch "$DATA_DIR/.loaded-codiesp"
fi
cfg="$(mktemp)"
if [[ "$AUGMENT" == 1 ]]; then
  synth=data/notes/synth-seed1-n1500.jsonl
  [[ -s "$synth" ]] || { echo "CODIESP_AUGMENT=1 needs $synth (make notes)"; exit 1; }
  if [[ ! -e "$DATA_DIR/.loaded-synth" ]]; then
    "$BIN" ingest --data-dir "$DATA_DIR" --format notes-jsonl --release synth --skip-index "$synth"
    touch "$DATA_DIR/.loaded-synth"
  fi
fi
# rare = 1-5 training cases (the issue's definition); every note (the quick preset stops at 1,500)
extra=""
case "$BUDGET" in
  "") ;;
  none) extra+=", \"max_train_secs\": null" ;;
  *[!0-9]*) echo "CODIESP_BUDGET must be seconds or none, not $BUDGET"; exit 1 ;;
  *) extra+=", \"max_train_secs\": $BUDGET" ;;
esac
[[ "$KEEP" == 1 ]] && extra+=", \"keep_checkpoint\": true"
[[ "$LAYERS" != 0 ]] && extra+=", \"encoder_layers\": $LAYERS"
echo "{\"rare_max_train\": 5, \"max_notes\": 0, \"augment\": $([[ "$AUGMENT" == 1 ]] && echo true || echo false)$extra}" > "$cfg"
cat "$cfg"
"$BIN" train notecontrast --base "$BASE" --data-dir "$DATA_DIR" --out "$OUT" --preset quick --config "$cfg"
rm -f "$cfg"
echo "codiesp run done in $(($(date +%s) - t0)) s; model card: $OUT/MODEL_CARD.md"
