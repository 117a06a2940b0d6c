#!/usr/bin/env python3
"""Fail when two modules of src/ import each other (issue #12: layers import downward only).

Reads every `crate::…`, `super::…` and `self::…` path outside comments and `#[cfg(test)]`
modules, resolves it to the longest module of the tree it names, and reports
- two top-level modules (folders or files under src/) that import each other, and
- two files that import each other (a child naming its parent module is allowed: `mod.rs`
  holds the shared types its files use).
Usage: scripts/check-cycles.py [src]   (exit 1 and one line per cycle when there is one)
"""
import collections
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"
PATH = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def code_of(text):
    text = text.split("\n#[cfg(test)]")[0]
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


mods = {}
for root, _, files in os.walk(SRC):
    for f in files:
        if f.endswith(".rs"):
            p = os.path.join(root, f)
            parts = p[len(SRC) + 1 : -3].split("/")
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                continue
            with open(p, encoding="utf-8") as fh:
                mods["::".join(parts)] = code_of(fh.read())


def resolve(cur, path):
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "super":
        base, segs = cur.split("::")[:-1], segs[1:]
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    else:
        base, segs = cur.split("::"), segs[1:]
    full = base + segs
    for i in range(len(full), 0, -1):
        m = "::".join(full[:i])
        if m in mods:
            return m
    return None


deps = collections.defaultdict(set)
for m, text in mods.items():
    for path in PATH.findall(text):
        t = resolve(m, path)
        if t and t != m and not m.startswith(t + "::"):
            deps[m].add(t)

top = collections.defaultdict(set)
for a, bs in deps.items():
    for b in bs:
        ta, tb = a.split("::")[0], b.split("::")[0]
        if ta != tb:
            top[ta].add(tb)

cycles = [f"modules {a} and {b} import each other" for a in sorted(top) for b in sorted(top[a]) if a < b and a in top[b]]
cycles += [f"files {a} and {b} import each other" for a in sorted(deps) for b in sorted(deps[a]) if a < b and a in deps.get(b, ())]
for c in cycles:
    print(c)
print(f"{len(mods)} modules, {sum(len(v) for v in deps.values())} imports, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
