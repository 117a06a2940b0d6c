"""Summarise a schemathesis NDJSON report per operation: generated cases (all phases), the
fuzzing phase's share, and the statuses the server answered. Exit 1 when an operation that
takes input got fewer than the wanted number of cases.

Usage: python3 contract_summary.py REPORT.ndjson MIN_CASES"""

import collections
import json
import sys

path, want = sys.argv[1], int(sys.argv[2])
cases = collections.defaultdict(set)
fuzz = collections.Counter()
statuses = collections.defaultdict(collections.Counter)
inputs = {}
with open(path) as f:
    for line in f:
        event = json.loads(line)
        done = event.get("ScenarioFinished")
        if not done:
            continue
        rec = done["recorder"]
        label = rec["label"]
        for cid, case in rec.get("cases", {}).items():
            value = case["value"]
            # Probes of other methods (405 checks) are recorded under the operation too.
            if f'{value["method"]} {value["path"]}' != label:
                continue
            cases[label].add(cid)
            if done["phase"] == "fuzzing":
                fuzz[label] += 1
            has_input = any(value.get(k) for k in ("body", "path_parameters", "query"))
            inputs[label] = inputs.get(label, False) or has_input
            resp = rec.get("interactions", {}).get(cid, {}).get("response")
            if resp:
                statuses[label][resp.get("status_code")] += 1

short = []
print(f"{'operation':<52} {'cases':>6} {'fuzzing':>8}  statuses")
for label in sorted(cases):
    n = len(cases[label])
    st = " ".join(f"{k}:{v}" for k, v in sorted(statuses[label].items()))
    print(f"{label:<52} {n:>6} {fuzz[label]:>8}  {st}")
    if inputs.get(label) and n < want:
        short.append(label)
if short:
    print(f"fewer than {want} cases for: {', '.join(short)}")
    sys.exit(1)
