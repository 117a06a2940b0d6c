#!/usr/bin/env python3
"""Reference numbers for benches/embed.rs: the same ICD-10-CM strings embedded with
sentence-transformers (PyTorch, CPU F32) and, if installed, onnxruntime (F32), on this machine.

    .venv/bin/pip install sentence-transformers onnxruntime onnx
    .venv/bin/python scripts/bench_reference.py ICD10CM_CODES_TXT [models/all-MiniLM-L6-v2] [2000]

`ONTOVEC_BENCH_THREADS=N` sets torch's and onnxruntime's thread counts (default: torch's own,
one per core); run the Rust side with `RAYON_NUM_THREADS=N` to match. Besides wall-clock
strings/s, every row reports strings per CPU-second of this process (all threads, spinning
included), which stays comparable when other jobs share the machine.

Strings are picked exactly as `ontovec::encoder::bench::read_icd10cm_terms` picks them
(line i * lines / n), so the rows compare one to one with the Rust benchmark's.
"""
import os
import sys
import tempfile
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

SINGLES = 300


def read_terms(path, n):
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    n = min(n, len(lines))
    out = []
    for i in range(n):
        line = lines[i * len(lines) // n]
        parts = line.split(None, 1)
        out.append(parts[1].strip() if len(parts) == 2 else line.strip())
    return out


def row(case, n, secs, pad=None, lat=None, cpu=None):
    p50 = p99 = "-"
    if lat is not None:
        lat = sorted(lat)
        p50 = f"{lat[round((len(lat) - 1) * 0.5)] * 1e3:.2f}"
        p99 = f"{lat[round((len(lat) - 1) * 0.99)] * 1e3:.2f}"
        secs = sum(lat)
        n = len(lat)
    pad = "-" if pad is None else f"{pad:.2f}"
    cpu = "-" if not cpu else f"{n / cpu:.0f}"
    print(f"{case:<52} {n / secs:>10.0f} {cpu:>10} {pad:>8} {p50:>8} {p99:>8}", flush=True)


def pad_eff(lens, batches):
    real = sum(lens[i] for b in batches for i in b)
    padded = sum(max(lens[i] for i in b) * len(b) for b in batches)
    return real / padded


def main():
    terms_path = sys.argv[1]
    model_dir = sys.argv[2] if len(sys.argv) > 2 else "models/all-MiniLM-L6-v2"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    terms = read_terms(terms_path, n)
    n = len(terms)
    if os.environ.get("ONTOVEC_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["ONTOVEC_BENCH_THREADS"]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = SentenceTransformer(model_dir, device="cpu")
    tok = model.tokenizer
    t = time.perf_counter()
    lens = [len(x) for x in tok(terms, truncation=True, max_length=model.max_seq_length)["input_ids"]]
    tok_s = time.perf_counter() - t
    print(f"{n} strings, {sum(lens) / n:.1f} tokens on average")
    print(f"{'case':<52} {'strings/s':>10} {'str/CPU-s':>10} {'pad eff':>8} {'p50 ms':>8} {'p99 ms':>8}")
    row("HF fast tokenizer only", n, tok_s)
    arrival = [list(range(i, min(i + 32, n))) for i in range(0, n, 32)]
    model.encode(terms[:128], batch_size=32)  # warm-up
    with torch.inference_mode():
        t, c = time.perf_counter(), time.process_time()
        for b in arrival:
            model.encode([terms[i] for i in b], batch_size=32)
        row("PyTorch ST, batches of 32 as they come", n, time.perf_counter() - t, pad_eff(lens, arrival),
            cpu=time.process_time() - c)
        order = sorted(range(n), key=lambda i: lens[i])
        sorted_b = [order[i:i + 32] for i in range(0, n, 32)]
        t, c = time.perf_counter(), time.process_time()
        model.encode(terms, batch_size=32)  # sentence-transformers sorts by length itself
        row("PyTorch ST, one call, batches of 32 sorted", n, time.perf_counter() - t, pad_eff(lens, sorted_b),
            cpu=time.process_time() - c)
        lat = []
        c = time.process_time()
        for s in terms[:SINGLES]:
            t = time.perf_counter()
            model.encode([s])
            lat.append(time.perf_counter() - t)
        row("PyTorch ST, one text per call", n, 1, lat=lat, cpu=time.process_time() - c)
    ort_rows(model, model_dir, terms, lens, arrival, sorted_b)


def ort_rows(model, model_dir, terms, lens, arrival, sorted_b):
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as e:
        print(f"onnxruntime rows skipped: {e}")
        return
    hf = model[0].auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    dummy = {k: torch.ones((2, 8), dtype=torch.long) for k in ("input_ids", "attention_mask", "token_type_ids")}
    axes = {k: {0: "b", 1: "s"} for k in dummy}
    axes["last_hidden_state"] = {0: "b", 1: "s"}
    try:
        torch.onnx.export(
            LastHidden(hf), (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]), path,
            input_names=list(dummy), output_names=["last_hidden_state"], dynamic_axes=axes,
            opset_version=17, dynamo=False,
        )
    except Exception as e:  # exporter availability varies across torch versions
        print(f"onnxruntime rows skipped: ONNX export failed: {e}")
        return
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    tk = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(model.max_seq_length)
    tk.enable_padding(pad_id=0, pad_token="[PAD]")  # BatchLongest

    def embed(texts):
        enc = tk.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        out = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        v = (out * m).sum(1) / m.sum(1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    ref = model.encode(terms[:16])
    assert np.min(np.sum(ref * embed(terms[:16]), axis=1)) > 0.9999, "ORT does not match PyTorch"
    embed(terms[:128])
    for case, batches in (("onnxruntime, batches of 32 as they come", arrival),
                          ("onnxruntime, batches of 32 sorted by length", sorted_b)):
        t, c = time.perf_counter(), time.process_time()
        for b in batches:
            embed([terms[i] for i in b])
        row(case, len(terms), time.perf_counter() - t, pad_eff(lens, batches), cpu=time.process_time() - c)
    lat = []
    c = time.process_time()
    for s in terms[:SINGLES]:
        t = time.perf_counter()
        embed([s])
        lat.append(time.perf_counter() - t)
    row("onnxruntime, one text per call", len(terms), 1, lat=lat, cpu=time.process_time() - c)


if __name__ == "__main__":
    main()
