"""The finished run folder of a distillation run (checkpoints during the run: `cod.distill.checkpoint`).

Run folder (`out_dir`):
  config.json        the DistillConfig and the run's context (teacher, student, labels, lwd mode, ...)
  metrics.json       validation / test / teacher metrics, counts, timings
  train_set.jsonl    every training example, counterfactuals included, with its pair and teacher probabilities
  README.md          the model card
  model/             the student: save_pretrained + tokenizer (+ README.md); loads with the Auto classes
  checkpoint/        last.pt (resume state) and best.pt (best weights so far); removed when the run finishes
                     (`cod.distill.checkpoint`)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cod.distill.checkpoint import remove_checkpoint
from cod.errors import DistillError
from cod.io import write_json, write_jsonl, write_text

MODEL_DIR = "model"


def train_set_rows(
    items,
    label_names: list[str],
    logits: dict[str, np.ndarray] | None,
    originals: dict[int, str],
    ce_labels: list[int],
    ce_weights: list[float],
):
    """One row per training example: text, labels by name, counterfactual flag, pair, teacher probabilities."""
    from cod.modeling.inference import softmax

    for item, ce_label, ce_weight in zip(items, ce_labels, ce_weights):
        ex = item.example
        row = {
            "text": ex.text,
            "label": label_names[ex.label],
            "ce_label": label_names[ce_label],
            "ce_weight": ce_weight,
            "is_counterfactual": item.is_counterfactual,
            "pair_id": item.pair_id,
        }
        if item.is_counterfactual:
            row["original"] = originals.get(item.pair_id)
        if logits is not None and ex.text in logits:
            row["teacher_probs"] = dict(zip(label_names, softmax(logits[ex.text]).round(6).tolist()))
        yield row


def save_student(model_dir: Path, model, tokenizer, card: str) -> None:
    """save_pretrained the student and its tokenizer, with the model card, into `model_dir`."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "README.md").write_text(card, encoding="utf-8")


def push_to_hub(out_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a run's model folder (weights, tokenizer, model card) to the Hub; returns the repo URL."""
    from huggingface_hub import HfApi

    model_dir = Path(out_dir) / MODEL_DIR
    if not (model_dir / "config.json").exists():
        raise DistillError(f"{model_dir} holds no saved student: finish a run with an output folder first.")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=str(model_dir),
            repo_id=repo_id,
            repo_type="model",
            commit_message="CoD Studio: distilled student",
        )
    except Exception as err:  # offline, no token, no rights: one clear message
        raise DistillError(
            f"Could not push {model_dir} to the Hub repo {repo_id!r}: {type(err).__name__}: {err}. "
            "Check that you are online and logged in (`hf auth login` or HF_TOKEN) with write access."
        ) from err
    return str(url)


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocations on GPU, else peak RSS (MB)."""
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB; process peak RSS


def write_run_folder(
    out_dir: Path,
    config,
    metrics,
    model,
    tokenizer,
    ts,
    targets,
    ce_labels,
    ce_weights,
    label_names,
    teacher,
    student_name: str,
    run_info: dict,
) -> None:
    """Write config.json, metrics.json, train_set.jsonl, README.md and model/ (see the module docstring)."""
    from cod.distill.modelcard import render_model_card

    teacher_name = getattr(teacher, "name", "") if teacher is not None else ""
    info = teacher.info() if hasattr(teacher, "info") else None  # kind, prompt, calibration, votes vs logprobs, cost
    context = {
        "teacher": teacher_name,
        "teacher_info": info,
        "student": student_name,
        "label_names": label_names,
        "lwd_mode": metrics.get("lwd_mode"),
        "head": metrics.get("head"),
        **run_info,
    }
    write_json(out_dir / "config.json", {"distill": config.to_dict(), **context})
    write_json(out_dir / "metrics.json", metrics)
    logits = targets.logits if targets else None
    write_jsonl(
        out_dir / "train_set.jsonl", train_set_rows(ts.items, label_names, logits, ts.originals, ce_labels, ce_weights)
    )
    card = render_model_card(
        config.to_dict(), metrics, teacher_name, student_name, label_names, run_info.get("data", "")
    )
    write_text(out_dir / "README.md", card)
    save_student(out_dir / MODEL_DIR, model, tokenizer, card)
    if not metrics["stopped"]:
        remove_checkpoint(out_dir)
