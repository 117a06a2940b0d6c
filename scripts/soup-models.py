#!/usr/bin/env python3
"""Average the weights of fine-tuned copies of one base model (a uniform "model soup",
Wortsman et al. 2022, arXiv 2203.05482) into a new model folder the server can load.

Usage: scripts/soup-models.py OUT MODEL_DIR MODEL_DIR [MODEL_DIR ...]

OUT gets the first folder's files (tokenizer, pooling, config, model card) and a
model.safetensors whose every tensor is the mean of the inputs' (computed in float32, stored in
the first input's dtype). The inputs must share tensor names and shapes (runs of one trainer
from one base). A fusion_weights.json of the first folder is not copied (it was fitted on that
model's scores); ontovec.json and MODEL_CARD.md are rewritten to say what the folder is, without
the first run's evaluation numbers. Needs the `safetensors` and `torch` packages (the bench venv has both).
"""

import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, inputs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    if out.exists():
        sys.exit(f"{out} exists; choose a new folder")
    tensors = [load_file(str(p / "model.safetensors")) for p in inputs]
    names = set(tensors[0])
    for p, t in zip(inputs[1:], tensors[1:]):
        if set(t) != names or any(t[k].shape != tensors[0][k].shape for k in names):
            sys.exit(f"{p} does not have the tensors of {inputs[0]}")
    shutil.copytree(inputs[0], out, ignore=shutil.ignore_patterns("fusion_weights.json", "checkpoint"))
    soup = {}
    for k in sorted(names):
        acc = sum(t[k].float() for t in tensors) / len(tensors)
        soup[k] = acc.to(tensors[0][k].dtype).contiguous()
    save_file(soup, str(out / "model.safetensors"), metadata={"format": "pt"})
    sources = [p.name for p in inputs]
    manifest_path = out / "ontovec.json"
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text())
        m.update(
            name=out.name,
            default=False,
            trained_by=f"scripts/soup-models.py: mean of the weights of {', '.join(sources)}",
            eval={"note": "not evaluated by a trainer: measure it with ontovec eval"},
        )
        m.pop("training", None)
        manifest_path.write_text(json.dumps(m, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(
        f"# {out.name}\n\nThe mean of the weights of {', '.join(sources)} "
        "(a uniform model soup, arXiv 2203.05482), written by scripts/soup-models.py. "
        "Their model cards hold their own evaluations; this folder's are not measured here.\n"
    )
    for pic in ("curves.svg", "eval.svg"):
        (out / pic).unlink(missing_ok=True)
    print(f"{out}: mean of {len(inputs)} models, {len(soup)} tensors")


if __name__ == "__main__":
    main()
