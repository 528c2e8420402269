"""The demo teacher's fitted head, shipped in the repository, so a first start assembles the teacher in seconds.

`head.safetensors` holds the linear head (weight (L, 768), bias (L,)) fitted by `cod.modeling.demo.recipe` on the
frozen mpnet layer named in `head.json`, and the teacher's logits on the demo task's validation and test splits (a
fresh process then never re-encodes those 1,500 sentences to evaluate a student: `split_logits`). `head.json`
records that layer, the recipe's settings, the sha256 of the weights file and of the demo task's splits the head
was fitted on, the fit's metrics, and the logits of the first
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
SPLITS = ("validation", "test")  # the splits whose teacher logits ship with the head
FORMAT = 1


@dataclass
class ShippedHead:
    """A fitted head: the mpnet layer it reads, its weights, and its record (head.json)."""

    layer: int
    weight: np.ndarray  # (num_labels, hidden)
    bias: np.ndarray  # (num_labels,)
    record: dict
    split_logits: dict[str, np.ndarray]  # validation / test -> (n, num_labels), in the task's order


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
            f"The shipped demo-teacher head is missing ({meta_path} and {weights_path} are expected): "
            "restore them from the repository (git checkout -- cod/modeling/demo), "
            "or fit one with `python -m cod teacher build-demo --refit`."
        )
    record = json.loads(meta_path.read_text())
    digest = _file_sha256(weights_path)
    if digest != record["head_sha256"]:
        raise ModelError(
            f"The shipped demo-teacher head {weights_path} has sha256 {digest}, but head.json expects "
            f"{record['head_sha256']}: restore both files from the repository, "
            "or refit with `python -m cod teacher build-demo --refit`."
        )
    tensors = load_file(str(weights_path))
    splits = {name: tensors[f"{name}_logits"] for name in SPLITS if f"{name}_logits" in tensors}
    return ShippedHead(int(record["layer"]), tensors["weight"], tensors["bias"], record, splits)


def write_head(
    folder: Path,
    layer: int,
    weight: np.ndarray,
    bias: np.ndarray,
    metrics: dict,
    recipe: dict,
    data_digest: str,
    check_logits: np.ndarray,
    split_logits: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write head.safetensors and head.json into `folder` (what `export-head` ships)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / HEAD_WEIGHTS
    tensors = {"weight": weight, "bias": bias, **{f"{k}_logits": v for k, v in (split_logits or {}).items()}}
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(weights_path))
    record = {
        "format": FORMAT,
        "layer": int(layer),
        "head_sha256": _file_sha256(weights_path),
        "data_sha256": data_digest,
        "recipe": recipe,
        "metrics": metrics,
        "check": {
            "split": "validation",
            "first": len(check_logits),
            "logits": [[round(float(v), 5) for v in row] for row in check_logits],
        },
    }
    (folder / HEAD_JSON).write_text(json.dumps(record, indent=2) + "\n")
    return folder / HEAD_JSON


SPLIT_LOGITS = "split_logits.npz"  # in the built teacher's folder: texts and logits of its task's held-out splits


def save_split_logits(folder: Path, task, split_logits: dict[str, np.ndarray]) -> None:
    """Keep the teacher's logits on `task`'s held-out splits beside the built model, with their texts."""
    texts = [e.text for name in SPLITS for e in getattr(task, name)]
    logits = np.concatenate([split_logits[name] for name in SPLITS]).astype(np.float32)
    np.savez(folder / SPLIT_LOGITS, texts=np.array(texts), logits=logits)


def read_split_logits(folder: Path) -> tuple[list[str], np.ndarray]:
    """(texts, logits (n, num_labels)) saved by `save_split_logits`; nothing when the file is absent."""
    path = folder / SPLIT_LOGITS
    if not path.is_file():
        return [], np.zeros((0, 0), dtype=np.float32)
    with np.load(path, allow_pickle=False) as saved:
        return [str(t) for t in saved["texts"]], saved["logits"]
