"""The demo teacher's fitted head, shipped in the repository, so a first start assembles the teacher in seconds.

`head.safetensors` holds the linear head (weight (L, 768), bias (L,)) fitted by `cod.modeling.demo.recipe` on the
frozen mpnet layer named in `head.json`. `head.json` records that layer, the recipe's settings, the sha256 of the
weights file and of the demo task's splits the head was fitted on, the fit's metrics, and the logits of the first
validation sentences (the assembled teacher must reproduce them). A refit (`cod teacher build-demo --refit`) makes
a new head; `cod teacher export-head` writes a built teacher's head back here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cod.errors import ModelError

HEAD_DIR = Path(__file__).parent
HEAD_JSON = "head.json"
HEAD_WEIGHTS = "head.safetensors"
CHECK_SENTENCES = 8  # validation sentences whose logits the assembled teacher must reproduce
FORMAT = 1


@dataclass
class ShippedHead:
    """A fitted head: the mpnet layer it reads, its weights, and its record (head.json)."""

    layer: int
    weight: np.ndarray  # (num_labels, hidden)
    bias: np.ndarray  # (num_labels,)
    record: dict


def data_sha256(task) -> str:
    """sha256 of a task's splits as the head saw them: split name, then one `label<TAB>text` line per example."""
    digest = hashlib.sha256()
    for name in ("train", "validation", "test"):
        digest.update(f"## {name}\n".encode())
        for example in getattr(task, name):
            digest.update(f"{int(example.label)}\t{example.text}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_head(folder: Path | None = None) -> ShippedHead:
    """Read the shipped head (default: this package's), refusing weights whose sha256 differs from head.json's."""
    from safetensors.numpy import load_file

    folder = Path(folder or HEAD_DIR)
    meta_path, weights_path = folder / HEAD_JSON, folder / HEAD_WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise ModelError(
            f"The shipped demo-teacher head is missing ({meta_path} and {weights_path} are expected): restore them from "
            "the repository (git checkout -- cod/modeling/demo), or fit one with `python -m cod teacher build-demo --refit`."
        )
    record = json.loads(meta_path.read_text())
    digest = _file_sha256(weights_path)
    if digest != record["head_sha256"]:
        raise ModelError(
            f"The shipped demo-teacher head {weights_path} has sha256 {digest}, but head.json expects "
            f"{record['head_sha256']}: restore both files from the repository, or refit with `python -m cod teacher build-demo --refit`."
        )
    tensors = load_file(str(weights_path))
    return ShippedHead(int(record["layer"]), tensors["weight"], tensors["bias"], record)


def write_head(folder: Path, layer: int, weight: np.ndarray, bias: np.ndarray, metrics: dict, recipe: dict,
               data_digest: str, check_logits: np.ndarray) -> Path:
    """Write head.safetensors and head.json into `folder` (what `export-head` ships)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / HEAD_WEIGHTS
    save_file({"weight": np.ascontiguousarray(weight, dtype=np.float32),
               "bias": np.ascontiguousarray(bias, dtype=np.float32)}, str(weights_path))
    record = {
        "format": FORMAT,
        "layer": int(layer),
        "head_sha256": _file_sha256(weights_path),
        "data_sha256": data_digest,
        "recipe": recipe,
        "metrics": metrics,
        "check": {"split": "validation", "first": len(check_logits),
                  "logits": [[round(float(v), 5) for v in row] for row in check_logits]},
    }
    (folder / HEAD_JSON).write_text(json.dumps(record, indent=2) + "\n")
    return folder / HEAD_JSON
