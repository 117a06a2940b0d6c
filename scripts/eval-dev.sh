#!/usr/bin/env bash
# Build the normalisation dev set from public data and evaluate lexical vs vector vs hybrid.
# 10% of HPO synonyms and of ICD-10-CM inclusion terms are held out of ingestion (deterministic
# hash), so neither index has ever seen the gold mentions. Needs scripts/fetch-data.sh first.
# The terms model is the base model all-MiniLM-L6-v2 unless ONTOVEC_EVAL_MODEL names another
# folder of models/ (e.g. ONTOVEC_EVAL_MODEL=hiprbert-minilm make eval); the table names it.
# Not the registry's default: after `train hiprbert` that is a model trained on most of the
# dev set's concepts.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-data/eval}"
DL="${ONTOVEC_DOWNLOADS:-data/downloads}"
BIN="${ONTOVEC_BIN:-target/release/ontovec}"
MODEL="${ONTOVEC_EVAL_MODEL:-all-MiniLM-L6-v2}"
mkdir -p "$DATA"
if [ ! -f "$DATA/gold.tsv" ]; then
  "$BIN" ingest --data-dir "$DATA" --format icd10cm-xml --release dev --if-absent \
    --hold-out 0.1 --gold-out "$DATA/gold-icd10cm.tsv" "$DL"/icd10cm/*.xml
  "$BIN" ingest --data-dir "$DATA" --format obo --system HPO --release dev --if-absent \
    --hold-out 0.1 --gold-out "$DATA/gold-hpo.tsv" "$DL"/hpo/hp.obo
  cat "$DATA/gold-icd10cm.tsv" "$DATA/gold-hpo.tsv" > "$DATA/gold.tsv"
fi
echo "gold mentions: $(wc -l < "$DATA/gold.tsv"); terms model: $MODEL"
"$BIN" eval normalize --data-dir "$DATA" --gold "$DATA/gold.tsv" --model "$MODEL"
