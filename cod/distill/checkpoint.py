"""Resumable checkpoints of a distillation run: the run's identity, the resume state and the best weights so far.

`checkpoint/last.pt` holds what `cod.distill.trainer` needs to continue after a crash or a stop (built in one place,
`Trainer.checkpoint_state`); `checkpoint/best.pt` the best trainable weights. Both are removed when the run finishes.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cod.errors import DistillError
from cod.io import atomic_path

CHECKPOINT_DIR = "checkpoint"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    # A crash while saving never leaves a half-written checkpoint behind.
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def fingerprint(config_dict: dict, texts_labels: list[tuple[str, int]], student: str) -> str:
    """Identity of a run for resuming: its settings (except resume-only ones), its training data, its student."""
    settings = {k: v for k, v in config_dict.items() if k not in {"resume", "tracker"}}
    blob = json.dumps([settings, texts_labels, student], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def rng_state() -> dict:
    """Python, numpy and torch random states (restored on resume so dropout repeats)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    """Inverse of `rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(out_dir: Path, state: dict) -> None:
    """Save the resume state (model, optimizer, scheduler, position, best so far) to checkpoint/last.pt."""
    folder = out_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(state, folder / "last.pt")


def save_best(out_dir: Path, best_state: dict) -> None:
    """Save the best trainable weights so far to checkpoint/best.pt."""
    folder = out_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(best_state, folder / "best.pt")


def load_checkpoint(out_dir: Path, fp: str) -> tuple[dict, dict | None] | None:
    """(last state, best weights) of an earlier run with the same fingerprint, or None when there is none."""
    last = out_dir / CHECKPOINT_DIR / "last.pt"
    if not last.exists():
        return None
    state = torch.load(last, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fp:
        raise DistillError(
            f"{out_dir} holds a checkpoint of a different run (other settings, data or student): "
            "choose another output folder, delete its checkpoint/ folder, or set resume off."
        )
    best_path = out_dir / CHECKPOINT_DIR / "best.pt"
    best = torch.load(best_path, map_location="cpu", weights_only=False) if best_path.exists() else None
    return state, best


def remove_checkpoint(out_dir: Path) -> None:
    """Delete checkpoint/ once the finished run is saved (it is large and no longer needed)."""
    folder = out_dir / CHECKPOINT_DIR
    for name in ("last.pt", "best.pt"):
        (folder / name).unlink(missing_ok=True)
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
