#!/usr/bin/env python3
"""Reference embeddings for the encoder parity test (tests/encoder_parity.rs).

Embeds fixed clinical strings with sentence-transformers + PyTorch (CPU, F32) from the same
HF folder the Rust encoder loads, and writes them as JSON. Run from the repo root:

    python -m venv .venv && .venv/bin/pip install sentence-transformers
    .venv/bin/python scripts/make_parity_fixture.py [models/all-MiniLM-L6-v2]

The strings cover short codes' descriptions, punctuation, abbreviations, mixed case, accents,
non-Latin text, an empty string and a note longer than the model's 256-token limit (so the
truncation rule is checked too).
"""
import json
import os
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "Type 2 diabetes mellitus without complications",
    "Essential (primary) hypertension",
    "Acute myocardial infarction",
    "STEMI",
    "Chronic kidney disease, stage 3a",
    "Pneumonia, unspecified organism",
    "Displaced fracture of shaft of left femur, initial encounter for closed fracture",
    "Major depressive disorder, single episode, moderate",
    "COPD with acute exacerbation",
    "Sepsis due to Escherichia coli [E. coli]",
    "HbA1c 9.2% -> poorly controlled DM2",
    "Hypoxic-ischemic encephalopathy of newborn",
    "Generalized tonic-clonic seizure",
    "Abnormality of the cardiovascular system",
    "Hemoglobin A1c/Hemoglobin.total in Blood",
    "metformin 500 MG Oral Tablet",
    "Ménière's disease, bilateral",
    "Sjögren syndrome with keratoconjunctivitis",
    "心肌梗死",
    "pt c/o SOB, CP radiating to L arm x2d; r/o ACS",
    "",
    "fever",
    "Patient is a 67 year old male with a history of hypertension, hyperlipidemia and type 2 "
    "diabetes mellitus who presents to the emergency department with two days of progressive "
    "shortness of breath, orthopnea and bilateral lower extremity edema. " * 6,
]


def main() -> None:
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/all-MiniLM-L6-v2"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/parity/all-MiniLM-L6-v2.json"
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    emb = model.encode(TEXTS, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tok = model.tokenizer
    lengths = [len(tok(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in TEXTS]
    doc = {
        "model": os.path.basename(os.path.normpath(model_dir)),
        "generator": "scripts/make_parity_fixture.py",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "max_seq_length": model.max_seq_length,
        "token_lengths": lengths,
        "texts": TEXTS,
        "embeddings": [[round(float(x), 7) for x in row] for row in emb],
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(TEXTS)} embeddings of dim {emb.shape[1]} to {out}; token lengths {lengths}")


if __name__ == "__main__":
    main()
