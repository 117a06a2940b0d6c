#!/usr/bin/env python3
"""Side-by-side embedding throughput as clients see it: ontovec over HTTP (`POST /v1/embed`),
one server per precision, against PyTorch (sentence-transformers) and, when it can be exported,
onnxruntime, both in process (no HTTP cost: the comparison favours them).

    ~/.cache/ontovec/venv-bench/bin/pip install torch sentence-transformers onnxruntime onnx
    ~/.cache/ontovec/venv-bench/bin/python scripts/bench_embed_http.py \\
        --bin target/release/ontovec --terms data/downloads/.../icd10cm-codes-2024.txt \\
        [--model models/all-MiniLM-L6-v2] [--n 2000] [--rounds 3] [--precisions f32,bf16,int8]

Cases, each measured for every system in turn inside one round (so all see the same machine
load; the machine is shared), rounds repeated and the median reported:
* as sent: batches of 32 in file order, 2 concurrent clients (ontovec) / 2 torch threads;
* sorted: the same strings in batches of 32 sorted by token length;
* single: one text per request, one client, p50 and p99 latency.
Strings are picked as `ontovec::encoder::bench::read_icd10cm_terms` picks them. The servers get
an empty data directory and the model folder only; each is started with `--precision P` and
`/v1/models` must report P (else the gate refused it and the row says so).
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

BATCH = 32
SINGLES = 300


def read_terms(path, n):
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    n = min(n, len(lines))
    out = []
    for i in range(n):
        parts = lines[i * len(lines) // n].split(None, 1)
        out.append(parts[1].strip() if len(parts) == 2 else parts[0].strip())
    return out


class Server:
    def __init__(self, binary, model_dir, precision, port, work):
        self.port = port
        models = os.path.join(work, f"models-{precision}")
        os.makedirs(models, exist_ok=True)
        os.symlink(os.path.abspath(model_dir), os.path.join(models, os.path.basename(model_dir.rstrip("/"))))
        self.log = open(os.path.join(work, f"serve-{precision}.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", os.path.join(work, f"data-{precision}"), "--models-dir", models,
             "--addr", f"127.0.0.1:{port}", "--precision", precision, "--max-inflight-texts", "1024"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
        deadline = time.time() + 300
        while True:
            try:
                if self.get("/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"server {precision} did not become ready; see {self.log.name}")
            time.sleep(0.2)
        self.model = self.get("/v1/models")[1]["models"][0]

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if body else None)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def http_embedder(port):
    local = threading.local()

    def embed(texts):
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/embed", json.dumps({"texts": texts}), {"content-type": "application/json"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {body[:200]}")
        return json.loads(body)["embeddings"]

    return embed


def run_batches(embed, terms, batches, clients):
    """Seconds to embed every batch with `clients` concurrent callers."""
    nxt = [0]
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(batches):
                return
            embed([terms[j] for j in batches[i]])

    t = time.perf_counter()
    ts = [threading.Thread(target=work) for _ in range(clients)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return time.perf_counter() - t


def singles(embed, terms):
    lat = []
    for s in terms[:SINGLES]:
        t = time.perf_counter()
        embed([s])
        lat.append(time.perf_counter() - t)
    lat.sort()
    return lat[len(lat) // 2] * 1e3, lat[round((len(lat) - 1) * 0.99)] * 1e3


def torch_systems(model_dir, terms, threads):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    out = {}

    def st(texts):
        with torch.inference_mode():
            return model.encode(texts, batch_size=BATCH)

    out["PyTorch (in process)"] = st
    try:
        out["onnxruntime (in process)"] = ort_embedder(model, model_dir, threads)
    except Exception as e:  # export tooling varies
        print(f"onnxruntime skipped: {e}", flush=True)
    return model, out


def ort_embedder(model, model_dir, threads):
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    hf = model[0].auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    dummy = tuple(torch.ones((2, 8), dtype=torch.long) for _ in range(3))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {k: {0: "b", 1: "s"} for k in names + ["last_hidden_state"]}
    torch.onnx.export(LastHidden(hf), dummy, path, input_names=names, output_names=["last_hidden_state"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    tk = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(model.max_seq_length)
    tk.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(texts):
        outs = []
        for i in range(0, len(texts), BATCH):
            enc = tk.encode_batch(texts[i:i + BATCH])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[..., None].astype(np.float32)
            v = (h * m).sum(1) / m.sum(1)
            outs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return np.concatenate(outs)

    return embed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--terms", required=True)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="f32,bf16,int8")
    ap.add_argument("--no-reference", action="store_true", help="ontovec servers only")
    a = ap.parse_args()
    terms = read_terms(a.terms, a.n)
    n = len(terms)
    work = tempfile.mkdtemp(prefix="bench-embed-")
    print(f"{n} strings from {a.terms}; {os.cpu_count()} cores; load average {os.getloadavg()}", flush=True)

    systems = {}
    servers = []
    for i, p in enumerate(a.precisions.split(",")):
        s = Server(a.bin, a.model, p, 18700 + i, work)
        servers.append(s)
        note = "" if s.model.get("precision") == p else f" (asked {p}: gate or CPU refused)"
        name = f"ontovec {s.model.get('precision')} (HTTP){note}"
        systems[name] = http_embedder(s.port)
    try:
        model = None
        if not a.no_reference:
            model, ref = torch_systems(a.model, terms, a.threads)
            systems.update(ref)
            tok = model.tokenizer
            lens = [len(x) for x in tok(terms, truncation=True, max_length=model.max_seq_length)["input_ids"]]
        else:
            lens = [len(t) for t in terms]
        print(f"{sum(lens) / n:.1f} tokens per string on average (HF tokenizer)", flush=True)
        arrival = [list(range(i, min(i + BATCH, n))) for i in range(0, n, BATCH)]
        order = sorted(range(n), key=lambda i: lens[i])
        sorted_b = [order[i:i + BATCH] for i in range(0, n, BATCH)]

        # agreement with the first system's vectors (F32 ontovec) on 200 strings
        sample = terms[:200]
        base_name = next(iter(systems))
        base = np.array(systems[base_name](sample))
        for name, emb in systems.items():
            v = np.array(emb(sample))
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
            cos = np.sum(base * v, axis=1)
            print(f"cosine to {base_name} over 200 strings: {name}: mean {cos.mean():.5f}, min {cos.min():.5f}",
                  flush=True)
            emb(terms[:64])  # warm-up

        res = {name: {"as sent": [], "sorted": [], "p50": [], "p99": []} for name in systems}
        for r in range(a.rounds):
            for case, batches in (("as sent", arrival), ("sorted", sorted_b)):
                for name, emb in systems.items():
                    clients = a.threads if "HTTP" in name else 1
                    secs = run_batches(emb, terms, batches, clients)
                    res[name][case].append(n / secs)
                    print(f"round {r + 1} {case:<8} {name:<40} {n / secs:8.0f} strings/s", flush=True)
            for name, emb in systems.items():
                p50, p99 = singles(emb, terms)
                res[name]["p50"].append(p50)
                res[name]["p99"].append(p99)
                print(f"round {r + 1} single   {name:<40} p50 {p50:6.2f} ms p99 {p99:6.2f} ms", flush=True)
        print(f"\nmedian of {a.rounds} rounds; load average at the end {os.getloadavg()}")
        print(f"| system | as sent (strings/s) | sorted (strings/s) | single text p50 / p99 (ms) |")
        print("|---|---|---|---|")
        for name, v in res.items():
            med = {k: statistics.median(x) for k, x in v.items()}
            print(f"| {name} | {med['as sent']:.0f} | {med['sorted']:.0f} | {med['p50']:.2f} / {med['p99']:.2f} |")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
