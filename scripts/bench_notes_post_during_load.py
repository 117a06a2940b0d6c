#!/usr/bin/env python3
"""Single note writes while a bulk note load runs (the background-work rule: a write never
waits for bulk work). One client uploads NOTES generated notes through `POST /v1/ingest`
(`notes-jsonl`) while another posts one note every INTERVAL seconds through `POST /v1/notes`
until the load's job ends; prints the posts' latency overall and in the load's last seconds
(its commit), and the job's phases as seen by polling.

    python3 scripts/bench_notes_post_during_load.py --url http://127.0.0.1:8080 [--notes 50000]

Generated notes are synthetic filler (no clinical meaning): only their number and size matter.
"""
import argparse
import http.client
import json
import threading
import time
import uuid
from urllib.parse import urlparse

WORDS = ("patient admitted with chest pain shortness of breath history of hypertension "
         "diabetes mellitus type two on metformin denies fever cough stable discharged home").split()


def jsonl(n, words, tag):
    lines = []
    for i in range(n):
        text = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(words))
        lines.append(json.dumps({"id": f"{tag}-{i}", "text": f"{i} {text}", "codes": []}))
    return ("\n".join(lines) + "\n").encode()


def multipart(fields, file_name, data):
    b = uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n".encode())
    out.append(data)
    out.append(f"\r\n--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--notes", type=int, default=50000)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--token", default=None, help="bearer token for writes, if the server has one")
    a = ap.parse_args()
    u = urlparse(a.url)
    auth = {"authorization": f"Bearer {a.token}"} if a.token else {}
    tag = f"bulk{int(time.time())}"
    body, ctype = multipart({"format": "notes-jsonl", "release": tag}, "notes.jsonl",
                            jsonl(a.notes, a.words, tag))
    posts = []  # (start time, latency s, status)
    phases = []  # (time, phase)
    finished = threading.Event()

    def poster():
        c = http.client.HTTPConnection(u.hostname, u.port)
        i = 0
        while not finished.is_set():
            t = time.time()
            c.request("POST", "/v1/notes", json.dumps({"id": f"{tag}-post-{i}", "text": f"note {i}"}),
                      {"content-type": "application/json", **auth})
            r = c.getresponse()
            r.read()
            posts.append((t, time.time() - t, r.status))
            i += 1
            time.sleep(a.interval)

    c = http.client.HTTPConnection(u.hostname, u.port)
    th = threading.Thread(target=poster)
    th.start()
    time.sleep(1)
    t0 = time.time()
    c.request("POST", "/v1/ingest", body, {"content-type": ctype, **auth})
    r = c.getresponse()
    job = json.loads(r.read())
    if r.status != 202:
        finished.set()
        th.join()
        raise SystemExit(f"ingest answered {r.status}: {job}")
    state = None
    while True:
        c.request("GET", f"/v1/jobs/{job['job_id']}")
        st = json.loads(c.getresponse().read())
        if not phases or phases[-1][1] != st.get("phase"):
            phases.append((time.time(), st.get("phase")))
        state = st["state"]
        if state in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    t1 = time.time()
    time.sleep(1)
    finished.set()
    th.join()
    during = [p for p in posts if t0 <= p[0] <= t1]
    lat = [p[1] * 1000 for p in during]
    bad = sum(1 for p in during if p[2] != 201)
    print(f"load: {a.notes} notes of {a.words} words, {state} in {t1 - t0:.1f} s; phases: "
          + ", ".join(f"+{t - t0:.1f}s {ph}" for t, ph in phases))
    print(f"posts during the load: {len(during)} (non-201: {bad}), latency p50 {pct(lat, 50):.1f} ms, "
          f"p99 {pct(lat, 99):.1f} ms, max {max(lat, default=float('nan')):.1f} ms")
    commit = [t for t, ph in phases if ph == "committing notes"]
    if commit:
        end = next((t for t, ph in phases if t > commit[0]), t1)
        cl = [p[1] * 1000 for p in posts if commit[0] - 0.05 <= p[0] <= end]
        print(f"posts while the job said 'committing notes' ({end - commit[0]:.2f} s): {len(cl)}, "
              f"max {max(cl, default=float('nan')):.1f} ms")


if __name__ == "__main__":
    main()
