#!/usr/bin/env python3
"""Latency of `POST /v1/notes/code` on 1,000-word cases through HTTP (issue 15: p50 <= 300 ms
on 2 cores). Cases are cut from a notes JSONL file (`{"text": ...}` per line, e.g. the output
of `ontovec synth-notes`): consecutive notes joined until 1,000 words, then cut there; the
requests rotate over the cases, one at a time, after a few warm-up requests.

    python3 scripts/bench_notes_code.py --url http://127.0.0.1:8080 --notes FILE [--requests 100]
"""
import argparse
import http.client
import json
import time
from urllib.parse import urlparse


def cases(path, words, n):
    out, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line:
            continue
        cur.extend(json.loads(line)["text"].split())
        if len(cur) >= words:
            out.append(" ".join(cur[:words]))
            cur = []
            if len(out) == n:
                break
    if not out:
        raise SystemExit(f"{path}: fewer than {words} words in all")
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--notes", required=True)
    ap.add_argument("--words", type=int, default=1000)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--system", default="ICD10CM")
    a = ap.parse_args()
    texts = cases(a.notes, a.words, a.cases)
    u = urlparse(a.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    times, statuses, with_evidence, codes = [], {}, 0, 0
    for i in range(a.warmup + a.requests):
        body = json.dumps({"text": texts[i % len(texts)], "k": 8, "system": a.system})
        t = time.perf_counter()
        c.request("POST", "/v1/notes/code", body, {"content-type": "application/json"})
        r = c.getresponse()
        data = r.read()
        dt = (time.perf_counter() - t) * 1000
        if i < a.warmup:
            continue
        statuses[r.status] = statuses.get(r.status, 0) + 1
        times.append(dt)
        if r.status == 200:
            for code in json.loads(data)["codes"]:
                codes += 1
                with_evidence += bool(code.get("evidence"))
    print(f"| POST /v1/notes/code, {a.words}-word cases ({len(texts)} distinct) | {len(times)} "
          f"| {pct(times, 50):.0f} | {pct(times, 99):.0f} | {statuses} "
          f"| {with_evidence}/{codes} codes with evidence |")


if __name__ == "__main__":
    main()
