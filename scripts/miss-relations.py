#!/usr/bin/env python3
"""How a normaliser's HPO misses relate to the gold concept in HPO's is_a hierarchy.

Usage: scripts/miss-relations.py DUMP HP_OBO [VARIANT]

DUMP is the `--dump` file of `ontovec eval normalize` (one JSON line per mention and variant);
VARIANT defaults to `vector`. For every mention of that variant whose first answer is an HPO
concept other than the gold one, prints the relation of the first answer to the gold — parent
(`ancestor 1`), grandparent (`ancestor 2`), child (`descendant 1`), ..., `sibling` (a shared
parent), `related N` (N is-a steps through the nearest common ancestor), `unrelated` — then
the counts, and how many are a parent, child or sibling.
"""

import collections
import json
import sys


def read_obo(path):
    parents, names, cur = collections.defaultdict(set), {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                cur = None
            elif line.startswith("id: HP:"):
                cur = line[4:]
            elif cur and line.startswith("name: "):
                names[cur] = line[6:]
            elif cur and line.startswith("is_a: "):
                parents[cur].add(line[6:].split()[0])
    return parents, names


def ancestors(parents, c):
    """Every ancestor of c with its smallest number of is_a steps."""
    out, frontier, d = {}, [c], 0
    while frontier:
        d += 1
        nxt = []
        for x in frontier:
            for p in parents[x]:
                if p not in out:
                    out[p] = d
                    nxt.append(p)
        frontier = nxt
    return out


def relation(parents, gold, pred):
    ag, ap = ancestors(parents, gold), ancestors(parents, pred)
    if pred in ag:
        return f"ancestor {ag[pred]}"
    if gold in ap:
        return f"descendant {ap[gold]}"
    if parents[gold] & parents[pred]:
        return "sibling"
    common = set(ag) & set(ap)
    if common:
        return f"related {min(ag[c] + ap[c] for c in common)}"
    return "unrelated"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    parents, names = read_obo(sys.argv[2])
    variant = sys.argv[3] if len(sys.argv) > 3 else "vector"
    counts = collections.Counter()
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["variant"] != variant or r["rank"] == 1 or not r["top"]:
                continue
            gold, pred = r["gold"].split(":", 1)[1], r["top"][0].split(":", 1)[1]
            if not gold.startswith("HP:") or not pred.startswith("HP:"):
                continue
            rel = relation(parents, gold, pred)
            counts[rel] += 1
            print(f"{rel:13} {r['mention']!r:50} gold {names.get(gold)!r:45} first {names.get(pred)!r}")
    total = sum(counts.values())
    close = counts["ancestor 1"] + counts["descendant 1"] + counts["sibling"]
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"{total} misses; parent, child or sibling of the gold: {close}")


if __name__ == "__main__":
    main()
