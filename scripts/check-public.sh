#!/usr/bin/env bash
# Acceptance check on the full public store with the model `make run` serves: the README's API
# tour does what README says, and the lay/abbreviation/code queries of issue 13 answer as they
# should. Usage: scripts/check-public.sh [URL] (default http://127.0.0.1:8080; start the server
# with `make run` first). Prints one line per check and exits non-zero if any fails.
set -uo pipefail
U="${1:-http://127.0.0.1:8080}"
fails=0
check() { # name, jq program printing true/false, curl args...
  local name=$1 prog=$2; shift 2
  local out
  out=$(curl -s "$@")
  if [ "$(printf '%s' "$out" | jq -r "$prog" 2>/dev/null)" = "true" ]; then
    echo "ok    $name"
  else
    echo "FAIL  $name: $(printf '%s' "$out" | head -c 600)"
    fails=$((fails + 1))
  fi
}
status() { # name, expected status, curl args...
  local name=$1 want=$2; shift 2
  local got
  got=$(curl -s -o /tmp/check-public.body -w '%{http_code}' "$@")
  if [ "$got" = "$want" ] && jq -e '.error.code // .resourceType' /tmp/check-public.body >/dev/null; then
    echo "ok    $name ($got)"
  else
    echo "FAIL  $name: status $got, body $(head -c 300 /tmp/check-public.body)"
    fails=$((fails + 1))
  fi
}
search() { # query, systems json, k
  curl -s "$U/v1/search" -H 'content-type: application/json' \
    -d "{\"query\": \"$1\", \"k\": ${3:-5}, \"systems\": $2}"
}
first_code() { search "$1" "$2" "${3:-5}" | jq -r '.results[0].code'; }
expect_first() { # name, query, systems, jq test on the first code
  local c; c=$(first_code "$2" "$3")
  if jq -n --arg c "$c" "$4" | grep -q true; then echo "ok    $1 ($c)"; else
    echo "FAIL  $1: first code $c; top 5: $(search "$2" "$3" | jq -c '[.results[] | .code]')"
    fails=$((fails + 1)); fi
}
echo "server $U, terms model: $(curl -s "$U/v1/models" | jq -r '[.models[] | select(.kind=="terms" and .default) | .name][0]')"

# README API tour
check "health" '.status == "ok" or .status == "up" or (.status | type == "string")' "$U/health"
check "sources list the public systems" '[.. | .system? // empty] | (index("ICD10CM") != null and index("HPO") != null)' "$U/v1/sources"
check "E11.9 with parents and terms" '.preferred_term == "Type 2 diabetes mellitus without complications" and (.parents | length) > 0 and (.terms | length) > 0' "$U/v1/systems/ICD10CM/concepts/E11.9"
check "s72001a -> S72.001A under S72.001" '.code == "S72.001A" and .requested_code == "s72001a" and .parents[0].code == "S72.001"' "$U/v1/systems/ICD10CM/concepts/s72001a"
check "E11.9 -> PHECODE mappings" '(.mappings | length) > 0' "$U/v1/systems/ICD10CM/concepts/E11.9/mappings?target=PHECODE"
check "HP:0001250 ancestors" '(.concepts | length) > 0' "$U/v1/systems/HPO/concepts/HP:0001250/ancestors"
check "PHECODE 250.2 crosswalks" '(.mappings | length) > 0' "$U/v1/systems/PHECODE/concepts/250.2/mappings"
expect_first "heart attack (ICD10CM) -> I21 first" "heart attack" '["ICD10CM"]' '$c | startswith("I21")'
check "high blood pressure (ICD10CM) -> I10 in top 3" '[.results[:3][] | .code] | index("I10") != null' \
  "$U/v1/search" -H 'content-type: application/json' -d '{"query": "high blood pressure", "k": 3, "systems": ["ICD10CM"]}'
check "normalize: sugar diabetes type two -> a type 2 diabetes concept first; fits answered" \
  '(.results[0].candidates[0].preferred_term | test("(type 2|type ii) diabetes"; "i")) and (.results[1].candidates | length) > 0' \
  "$U/v1/normalize" -H 'content-type: application/json' -d '{"mentions": ["sugar diabetes type two", "fits"], "k": 3}'
check "relatedness seizure ~ HP:0001250" '.scores[0] > 0.5' "$U/v1/relatedness" -H 'content-type: application/json' \
  -d '{"pairs": [{"a": {"text": "seizure"}, "b": {"system": "HPO", "code": "HP:0001250"}}]}'
check "models: a default terms model" '[.models[] | select(.kind == "terms" and .default)] | length == 1' "$U/v1/models"
F="$U/fhir"
check "FHIR \$lookup E11.9" '.resourceType == "Parameters"' "$F/CodeSystem/\$lookup?system=http://hl7.org/fhir/sid/icd-10-cm&code=E11.9"
check "FHIR \$validate-code E11.99 is false" '[.parameter[] | select(.name == "result") | .valueBoolean][0] == false' \
  "$F/CodeSystem/\$validate-code?url=http://hl7.org/fhir/sid/icd-10-cm&code=E11.99"
check "FHIR \$expand filter heart attack -> I21 first" '.expansion.contains[0].code | startswith("I21")' \
  "$F/ValueSet/\$expand?url=http://hl7.org/fhir/sid/icd-10-cm?fhir_vs&filter=heart%20attack&count=5"
status "FHIR \$lookup unknown system: 404 OperationOutcome" 404 "$F/CodeSystem/\$lookup?system=http://example.org&code=1"

# Lay phrases, abbreviations, typed codes (issue 13)
expect_first "MI (ICD10CM) -> I21" "MI" '["ICD10CM"]' '$c | startswith("I21")'
expect_first "T2DM (ICD10CM) -> E11" "T2DM" '["ICD10CM"]' '$c | startswith("E11")'
expect_first "HTN (ICD10CM) -> a hypertensive disease (I10-I1A)" "HTN" '["ICD10CM"]' '$c | test("^I1[0-6A]")'
expect_first "CHF (ICD10CM) -> I50" "CHF" '["ICD10CM"]' '$c | startswith("I50")'
expect_first "COPD (ICD10CM) -> J44" "COPD" '["ICD10CM"]' '$c | startswith("J44")'
expect_first "s72001a (search) -> S72.001A" "s72001a" '["ICD10CM"]' '$c == "S72.001A"'
expect_first "S00.00A (search, placeholder left out) -> S00.00XA" "S00.00A" '["ICD10CM"]' '$c == "S00.00XA"'
expect_first "heart attack (HPO) -> HP:0001658" "heart attack" '["HPO"]' '$c == "HP:0001658"'
status "search ??? : 404 nothing_to_search" 404 "$U/v1/search" -H 'content-type: application/json' -d '{"query": "???"}'
status "concept S72.001Z (no such 7th character): 404" 404 "$U/v1/systems/ICD10CM/concepts/S72.001Z"
echo "$fails failed"
[ "$fails" -eq 0 ]
