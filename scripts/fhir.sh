#!/usr/bin/env bash
# Checks by software we did not write, against a live server on the fixtures
# (scripts/live-server.sh):
#   fhir     every FHIR answer (errors too) validated by HL7's FHIR R4 JSON Schema and by FHIR.js
#            (R4 StructureDefinitions), the operations called through fhir-kit-client
#            (scripts/fhir/fhir.test.mjs);
#   browser  the built-in page in Debian's headless Chromium driven by puppeteer-core
#            (scripts/fhir/browser.test.mjs); a screenshot of each step in $SCREENSHOTS
#            (default: screenshots/, gitignored).
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

npm_setup
for w in "${want[@]}"; do
  [[ "$w" == browser ]] && chromium_setup
done
live_server_start
export ONTOVEC_URL
for w in "${want[@]}"; do
  case "$w" in
    fhir) run_node_test fhir.test.mjs ;;
    browser) run_node_test browser.test.mjs && echo "screenshots in $SCREENSHOTS" ;;
    *) echo "unknown check $w (fhir|browser)" >&2; exit 2 ;;
  esac
done
