#!/usr/bin/env bash
# Checks by software we did not write, against a live server on the fixtures
# (scripts/live-server.sh):
#   fhir     every FHIR answer (errors too) validated by HL7's FHIR R4 JSON Schema and by FHIR.js
#            (R4 StructureDefinitions), the operations called through fhir-kit-client
#            (scripts/fhir/fhir.test.mjs);
#   browser  the built-in page in Debian's headless Chromium driven by puppeteer-core
#            (scripts/fhir/browser.test.mjs); a screenshot of each step in $SCREENSHOTS
#            (default: screenshots/, gitignored). For its model-card view a real HiPrBERT run of
#            four steps (lr 1e-6: the served embeddings stay the base model's to within noise)
#            trains `hiprbert-card` on the fixture store first, so the pictures it shows are
#            the ones the trainer drew.
# The npm packages (scripts/fhir/package.json, pinned) are installed once into
# ~/.cache/ontovec/npm-fhir; Chromium comes from apt (installed here when missing: CI runs as
# root). Nothing is fetched while the tests run.
#
# Usage: scripts/fhir.sh [fhir|browser]...   (default: both)
set -euo pipefail
source "$(dirname "$0")/live-server.sh"

want=("$@")
[[ ${#want[@]} -eq 0 ]] && want=(fhir browser)
export SCREENSHOTS="${SCREENSHOTS:-$ROOT/screenshots}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"

npm_setup() {
  command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are required" >&2; return 1; }
  NPMDIR="$CACHE/npm-fhir"
  mkdir -p "$NPMDIR"
  if ! cmp -s "$ROOT/scripts/fhir/package.json" "$NPMDIR/package.json" || [[ ! -d "$NPMDIR/node_modules" ]]; then
    cp "$ROOT/scripts/fhir/package.json" "$NPMDIR/package.json"
    # puppeteer-core never downloads a browser; the system Chromium is used.
    (cd "$NPMDIR" && npm install --no-audit --no-fund --silent)
  fi
}

chromium_setup() {
  if [[ -z "$CHROMIUM" ]]; then
    echo "installing chromium (Debian) ..."
    if [[ $(id -u) -eq 0 ]]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
    CHROMIUM="$(command -v chromium || true)"
    [[ -n "$CHROMIUM" ]] || { echo "chromium is required for the browser test (apt-get install chromium)" >&2; return 1; }
  fi
  export CHROMIUM
}

# Copy the tests next to node_modules so that their imports resolve there.
run_node_test() { # file
  local dir="$SCRATCH/node-tests"
  mkdir -p "$dir"
  ln -sfn "$NPMDIR/node_modules" "$dir/node_modules"
  echo '{"type": "module"}' >"$dir/package.json"
  cp "$ROOT/scripts/fhir/$1" "$dir/"
  node --test --test-reporter=spec "$dir/$1"
}

# A trained model whose folder holds the trainer's curves.svg and eval.svg (browser test).
train_card_model() {
  local cfg="$SCRATCH/train-card.json"
  cat >"$cfg" <<'JSON'
{"steps": 4, "tree_pairs": 8, "synonym_concepts": 4, "max_len": 16, "chunk": 16,
 "optimizer": {"lr": 1e-6}, "max_train_secs": null, "checkpoint_every": 0, "log_every": 0,
 "dev_every": 2, "dev_eval": {"pairs_per_category": 10, "max_queries": 10, "max_candidates": 50},
 "eval": {"pairs_per_category": 20, "max_queries": 20, "max_candidates": 100}}
JSON
  ONTOVEC_LOG=warn "$BIN" train hiprbert --base "$MODEL" --data-dir "$SCRATCH/data" \
    --out "$SCRATCH/models/hiprbert-card" --config "$cfg" 2>"$SCRATCH/train-card.log" ||
    { echo "training the card model failed:" >&2; tail -20 "$SCRATCH/train-card.log" >&2; return 1; }
  export ONTOVEC_CARD_MODEL=hiprbert-card
  # a second terms model: the server embeds the fixture store twice before it is ready
  export LIVE_SERVER_WAIT_SECS="${LIVE_SERVER_WAIT_SECS:-600}"
}

npm_setup
for w in "${want[@]}"; do
  [[ "$w" == browser ]] && chromium_setup
done
live_server_prepare
for w in "${want[@]}"; do
  [[ "$w" == browser ]] && train_card_model
done
live_server_run
export ONTOVEC_URL
for w in "${want[@]}"; do
  case "$w" in
    fhir) run_node_test fhir.test.mjs ;;
    browser) run_node_test browser.test.mjs && echo "screenshots in $SCREENSHOTS" ;;
    *) echo "unknown check $w (fhir|browser)" >&2; exit 2 ;;
  esac
done
