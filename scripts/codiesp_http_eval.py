#!/usr/bin/env python3
"""CodiEsp-D ranking metrics of a *served* coder, through the HTTP API clients use.

Sends every case of a CodiEsp split (default dev; the test split is held out: never pass it)
to `POST /v1/notes/code` with `k` codes (default 1000) and scores the returned order — the
category-diversified list `/v1/notes/code` serves — with the trainer's definitions
(`src/eval/coding.rs`): MAP = mean over cases of average precision over the case's distinct gold
codes (a gold code not in the returned list counts as a miss, so MAP is exact up to the codes
ranked past `k`), P@5, R@8 and R@20 averaged over cases, and rare R@8 / R@20 over the gold
occurrences of codes with 1-5 training cases (counted from `trainD.tsv`). One model against
another on the same cases is the point: e.g. a model trained only on synthetic notes against
the CodiEsp-trained ones.

    python3 scripts/codiesp_http_eval.py --url http://127.0.0.1:8080 [--codiesp data/codiesp]
"""

import argparse
import json
import pathlib
import sys
import time
import urllib.request
from collections import defaultdict


def read_codes(tsv: pathlib.Path) -> dict[str, list[str]]:
    """Case id -> distinct upper-cased codes in file order (the loader's rule)."""
    out: dict[str, list[str]] = defaultdict(list)
    for n, line in enumerate(tsv.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            sys.exit(f"{tsv}:{n}: expected `case<TAB>code`, got {line!r}")
        case, code = parts[0].strip(), parts[1].strip().upper()
        if code not in out[case]:
            out[case].append(code)
    return out


def code_note(url: str, text: str, k: int) -> list[str]:
    body = json.dumps({"text": text, "k": k, "system": "ICD10CM"}).encode()
    req = urllib.request.Request(
        f"{url}/v1/notes/code", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return [c["code"] for c in json.load(r)["codes"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--codiesp", default="data/codiesp")
    ap.add_argument("--split", default="dev", choices=["dev", "train"])
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--label", default="served model")
    args = ap.parse_args()
    root = pathlib.Path(args.codiesp)
    train = read_codes(root / "train" / "trainD.tsv")
    cases_per_code: dict[str, int] = defaultdict(int)
    for codes in train.values():
        for c in codes:
            cases_per_code[c] += 1
    rare = {c for c, n in cases_per_code.items() if 1 <= n <= 5}
    gold = read_codes(root / args.split / f"{args.split}D.tsv")
    texts = root / args.split / "text_files_en"
    ap_sum = p5 = r8 = r20 = 0.0
    rare_gold = rare8 = rare20 = 0
    n = 0
    t0 = time.time()
    for case, codes in sorted(gold.items()):
        ranked = code_note(args.url, (texts / f"{case}.txt").read_text(encoding="utf-8"), args.k)
        rank = {c: i + 1 for i, c in enumerate(ranked)}
        hits = sorted(rank[c] for c in codes if c in rank)
        ap_sum += sum((h + 1) / r for h, r in enumerate(hits)) / len(codes)
        g = set(codes)
        p5 += sum(c in g for c in ranked[:5]) / 5
        r8 += sum(c in g for c in ranked[:8]) / len(g)
        r20 += sum(c in g for c in ranked[:20]) / len(g)
        for c in codes:
            if c in rare:
                rare_gold += 1
                rare8 += c in ranked[:8]
                rare20 += c in ranked[:20]
        n += 1
    secs = time.time() - t0
    row = {
        "MAP": ap_sum / n,
        "P@5": p5 / n,
        "R@8": r8 / n,
        "R@20": r20 / n,
        "rare R@8": rare8 / max(rare_gold, 1),
        "rare R@20": rare20 / max(rare_gold, 1),
    }
    print(
        f"{n} {args.split} cases in {secs:.0f} s through {args.url} (k {args.k}); "
        f"{rare_gold} rare gold occurrences"
    )
    print("| model | " + " | ".join(row) + " |")
    print("|---" * (len(row) + 1) + "|")
    print(f"| {args.label} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
