#!/usr/bin/env python3
"""PyTorch reference for the HiPrBERT training step, measured side by side with candle.

Reads the workload the Rust benchmark wrote (`ontovec bench train`, src/bench/train.rs: token ids per micro-batch,
tree-pair categories, synonym labels) and runs the *same* step on the same weights:
length-sorted chunks of 32 sequences, BERT forward with dropout 0.1, mean pooling, L2
normalisation, the tree multi-similarity loss and the synonym multi-similarity loss with
hard-pair mining, backward, global-norm clipping and AdamW. Tokenisation is excluded on both
sides (the ids come from the file).

Usage:
    pip install torch safetensors numpy          # CPU is enough
    python3 scripts/bench_train_reference.py WORKLOAD.json MODEL_DIR [--threads 2] [--steps N]

Prints examples/s and tokens/s as JSON. The model is a minimal BERT written against the
HF tensor names (no transformers dependency), post-LayerNorm, GELU-erf, like BertModel.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def bert_forward(w, cfg, ids, mask, p_drop, prefix=""):
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = h // heads
    eps = cfg.get("layer_norm_eps", 1e-12)
    b, l = ids.shape
    g = lambda n: w[prefix + n]
    x = (
        F.embedding(ids, g("embeddings.word_embeddings.weight"))
        + g("embeddings.position_embeddings.weight")[:l].unsqueeze(0)
        + g("embeddings.token_type_embeddings.weight")[0]
    )
    x = F.layer_norm(x, (h,), g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    x = F.dropout(x, p_drop, True)
    ext = (1.0 - mask[:, None, None, :].float()) * -1e9
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda t, n: F.linear(t, g(p + n + ".weight"), g(p + n + ".bias"))
        split = lambda t: t.view(b, l, heads, hd).transpose(1, 2)
        q, k, v = split(lin(x, "attention.self.query")), split(lin(x, "attention.self.key")), split(lin(x, "attention.self.value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + ext, dim=-1)
        probs = F.dropout(probs, p_drop, True)
        ctx = (probs @ v).transpose(1, 2).reshape(b, l, h)
        a = F.dropout(lin(ctx, "attention.output.dense"), p_drop, True)
        a = F.layer_norm(a + x, (h,), g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"), eps)
        i_ = F.gelu(lin(a, "intermediate.dense"))
        o = F.dropout(lin(i_, "output.dense"), p_drop, True)
        x = F.layer_norm(o + a, (h,), g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    return x


def embed(w, cfg, seqs, chunk, p_drop, prefix):
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    parts = []
    for s in range(0, len(order), chunk):
        group = [seqs[i] for i in order[s : s + chunk]]
        l = max(len(x) for x in group)
        ids = torch.tensor([x + [0] * (l - len(x)) for x in group])
        mask = torch.tensor([[1] * len(x) + [0] * (l - len(x)) for x in group])
        states = bert_forward(w, cfg, ids, mask, p_drop, prefix)
        m = mask.unsqueeze(2).float()
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
        parts.append(F.normalize(pooled, dim=-1, eps=1e-12))
    out = torch.cat(parts)
    inverse = torch.empty(len(seqs), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(seqs))
    return out[inverse]


def tree_loss(sims, cats, margin=0.1, scale=20.0):
    terms = []
    for i in range(4):
        for j in range(i + 1, 4):
            sp, sn = sims[cats == i], sims[cats == j]
            if len(sp) == 0 or len(sn) == 0:
                continue
            z = (sn[None, :] - sp[:, None] + margin) * scale
            terms.append((torch.log1p(torch.exp(z).sum(1)) / scale).mean())
    return torch.stack(terms).mean() if terms else sims.sum() * 0


def synonym_loss(emb, labels, alpha=2.0, beta=50.0, base=0.5, eps=0.1):
    sim = emb @ emb.t()
    s = sim.detach()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    posm, negm = same & ~eye, ~same
    min_pos = torch.where(posm, s, torch.full_like(s, math.inf)).min(1).values
    max_neg = torch.where(negm, s, torch.full_like(s, -math.inf)).max(1).values
    valid = torch.isfinite(min_pos) & torch.isfinite(max_neg)
    pos = (posm & (s - eps < max_neg[:, None]) & valid[:, None]).float()
    neg = (negm & (s + eps > min_pos[:, None]) & valid[:, None]).float()
    anchors = ((pos + neg).sum(1) > 0).sum().clamp(min=1)
    pt = torch.log1p((torch.exp(-alpha * (sim - base)) * pos).sum(1)) / alpha
    nt = torch.log1p((torch.exp(beta * (sim - base)) * neg).sum(1)) / beta
    return (pt + nt).sum() / anchors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("model_dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: all in the file minus warm-up)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    wl = json.load(open(args.workload))
    cfg = json.load(open(f"{args.model_dir}/config.json"))
    raw = load_file(f"{args.model_dir}/model.safetensors")
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""
    w = {k: v.float().requires_grad_(k.startswith(prefix + "embeddings.") and not k.endswith("position_ids") or k.startswith(prefix + "encoder.")) for k, v in raw.items()}
    params = [v for v in w.values() if v.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(wl.get("lr", 5e-5)), weight_decay=0.01)
    batches = wl["batches"]
    warm = int(wl.get("warmup", 2))
    timed = batches[warm:] if args.steps == 0 else batches[warm : warm + args.steps]
    ex = tok = 0
    t_run = 0.0
    for k, bt in enumerate(batches[:warm] + timed):
        t0 = time.perf_counter()
        seqs = bt["ids"]
        n = len(bt["cats"])
        emb = embed(w, cfg, seqs, int(wl.get("chunk", 32)), float(wl.get("dropout", 0.1)), prefix)
        sims = (emb[:n] * emb[n : 2 * n]).sum(-1)
        loss = tree_loss(sims, torch.tensor(bt["cats"])) + synonym_loss(emb[2 * n :], torch.tensor(bt["labels"]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if k >= warm:
            t_run += dt
            ex += len(seqs)
            tok += sum(len(s) for s in seqs)
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "steps": len(timed),
        "examples": ex,
        "tokens": tok,
        "seconds": round(t_run, 3),
        "examples_per_sec": round(ex / t_run, 2),
        "tokens_per_sec": round(tok / t_run, 1),
    }))


if __name__ == "__main__":
    main()
