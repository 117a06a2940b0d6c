#!/usr/bin/env python3
"""Single queries while batches saturate the encoder (issue 16: "a query should not wait behind
a batch"). Two clients send `POST /v1/embed` batches of 32 distinct ICD-10-CM strings back to
back for SECONDS while `ontovec bench load` times one-client vector and hybrid searches.

    python3 scripts/bench_query_under_bulk.py --url http://127.0.0.1:8080 \\
        --bin target/release/ontovec --terms data/downloads/.../icd10cm-codes-2024.txt [--seconds 45]
"""
import argparse
import http.client
import json
import subprocess
import threading
import time
from urllib.parse import urlparse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--bin", default="target/release/ontovec")
    ap.add_argument("--terms", required=True)
    ap.add_argument("--seconds", type=float, default=45)
    ap.add_argument("--requests", type=int, default=300)
    a = ap.parse_args()
    terms = [p[1].strip() for p in (l.split(None, 1) for l in open(a.terms)) if len(p) == 2]
    u = urlparse(a.url)
    done = [0, 0]
    statuses = {}
    lock = threading.Lock()
    stop = time.time() + a.seconds

    def bulk(w):
        c = http.client.HTTPConnection(u.hostname, u.port)
        i = w * 32
        while time.time() < stop:
            c.request("POST", "/v1/embed", json.dumps({"texts": terms[i:i + 32]}),
                      {"content-type": "application/json"})
            r = c.getresponse()
            r.read()
            with lock:
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    done[w] += 32
            i = (i + 64) % (len(terms) - 32)

    ts = [threading.Thread(target=bulk, args=(w,)) for w in (0, 1)]
    for t in ts:
        t.start()
    time.sleep(3)
    out = subprocess.run([a.bin, "bench", "load", "--url", a.url, "--concurrency", "1",
                          "--modes", "vector,hybrid", "--requests", str(a.requests)],
                         capture_output=True, text=True)
    for t in ts:
        t.join()
    print(out.stdout, end="")
    if out.returncode != 0:
        print(out.stderr)
    print(f"bulk meanwhile: {sum(done) / a.seconds:.0f} strings/s embedded in batches of 32 "
          f"by 2 clients; statuses {statuses}")


if __name__ == "__main__":
    main()
