"""What a distillation run prepares before its first step: checked inputs, the accelerator, the student, the layer
plan of LWD, the training set with its teacher targets, the optimizer and the step plan (`cod.distill.trainer` runs
the loop on them).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cod.config import DistillConfig
from cod.distill import student as S
from cod.distill.batching import (
    TeacherTargets,
    TrainingSet,
    build_training_set,
    candidate_texts,
    cod_real,
    make_collate,
    refresh_verdicts,
    teacher_targets,
    tokenizers_match,
    uniform_layer_map,
)
from cod.distill.losses import Objective
from cod.errors import DistillError

log = logging.getLogger(__name__)


def check_inputs(config: DistillConfig, examples, validation, label_names: list[str], teacher) -> None:
    n = len(label_names)
    for name, split in (("training", examples), ("validation", validation or [])):
        bad = [e for e in split if not 0 <= int(e.label) < n]
        if bad:
            raise DistillError(
                f"A {name} example has label {bad[0].label} but the labels are {label_names}: fix the data."
            )
    if len(examples) < 2:
        raise DistillError(f"Distillation needs at least 2 training examples, got {len(examples)}.")
    if teacher is None and (config.method != "ce" or config.cod):
        raise DistillError(f"Method {config.label!r} needs a teacher: load one (or use method ce without CoD).")
    if teacher is not None and teacher.num_labels != n:
        raise DistillError(
            f"The teacher has {teacher.num_labels} labels ({teacher.label_names}) but the data has {n} "
            f"({label_names}): "
            "choose a matching teacher or map the labels."
        )


def make_accelerator(config: DistillConfig):
    import torch
    from accelerate import Accelerator

    # Mixed precision is a GPU feature here: on CPU (or MPS) the run stays float32 whatever was asked.
    precision = config.mixed_precision if torch.cuda.is_available() else "no"
    kwargs: dict[str, Any] = {
        "mixed_precision": precision,
        "gradient_accumulation_steps": config.gradient_accumulation,
    }
    if config.tracker:
        from accelerate.tracking import get_available_trackers

        available = [str(getattr(t, "value", t)) for t in get_available_trackers()]
        if config.tracker not in available:
            raise DistillError(
                f"Tracker {config.tracker!r} is not installed (available: {available or 'none'}): "
                f"`pip install {config.tracker}` or turn tracking off."
            )
        kwargs["log_with"] = config.tracker
    try:
        return Accelerator(**kwargs)
    except ValueError as err:  # accelerate keeps process-wide state: a second run with other settings needs a reset
        from accelerate.state import AcceleratorState, GradientState

        log.debug("resetting accelerate state: %s", err)
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
        return Accelerator(**kwargs)


def load_student(student, label_names: list[str], config: DistillConfig):
    """(model, tokenizer, name): loaded by name (seeded, so a fresh head is the same every run) or given as a pair."""
    if isinstance(student, str | Path):
        model, tokenizer = S.load_student(str(student), label_names, head=config.head)
        name = str(student)
    else:
        model, tokenizer = student
        name = getattr(model.config, "_name_or_path", "") or "student"
    S.set_label_names(model, label_names)
    if tokenizer.pad_token is None:  # decoder-style tokenizers: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, name


@dataclass
class LayerPlan:
    """LWD's uniform layer map and whether states are compared per token (both tokenizers cut texts alike)."""

    teacher_layers: list[int] | None = None
    mode: str | None = None  # token | pooled; None without states
    widths: tuple[int, int] = (0, 0)  # (student, teacher) hidden sizes

    @property
    def token_level(self) -> bool:
        return self.mode == "token"


def layer_plan(config: DistillConfig, objective: Objective, teacher, model, tokenizer, texts) -> LayerPlan:
    if not objective.teacher_states:
        return LayerPlan()
    kind = getattr(teacher, "kind", "classifier")
    if kind != "classifier":  # an LLM teacher's hidden states read a prompt, not the text the student reads
        raise DistillError(
            f"LWD needs a classifier teacher's hidden states; the {kind} teacher {teacher.name!r} "
            "is scored on label words: use method kd."
        )
    s_layers, s_width = S.layer_count_and_width(model)
    t_count, t_width = S.layer_count_and_width(teacher.model)
    same = tokenizers_match(teacher.tokenizer, tokenizer, texts, config.max_length)
    if config.lwd_mode == "token" and not same:
        raise DistillError("lwd_mode 'token' needs teacher and student to share a tokenizer: use 'pooled' or 'auto'.")
    mode = "token" if (config.lwd_mode == "token" or (config.lwd_mode == "auto" and same)) else "pooled"
    return LayerPlan(uniform_layer_map(s_layers, t_count), mode, (s_width, t_width))


@dataclass
class TrainingData:
    """The run's training set with its targets: CE labels and weights per item, teacher outputs, the collate."""

    ts: TrainingSet
    targets: TeacherTargets | None
    ce_labels: list[int]
    ce_weights: list[float]
    collate: Callable
    verdicts_changed: int
    teacher_seconds: float

    @property
    def texts(self) -> list[str]:
        return [it.example.text for it in self.ts.items]


def training_data(config, objective: Objective, teacher, tokenizer, examples, counterfactuals, layers: LayerPlan):
    """Teacher outputs once per unique text, the training items, their CE labels and weights, and the collate."""
    t0 = time.perf_counter()
    texts = candidate_texts(config, examples, counterfactuals)
    if config.method == "ce" and config.ce_label == "gold":  # the teacher only labels counterfactuals
        real = {e.text for e in (cod_real(config, examples) if config.cod else examples)}
        texts = [t for t in texts if t not in real]
    targets = None
    if texts and teacher is not None:
        max_len = config.max_length if layers.token_level else getattr(teacher, "max_length", config.max_length)
        targets = teacher_targets(teacher, texts, layers.teacher_layers, layers.token_level, max_len)
    changed = 0
    if config.cod and targets is not None:  # records may come from another teacher: this run's teacher decides
        counterfactuals, changed = refresh_verdicts(counterfactuals or [], targets.logits)
    ts = build_training_set(config, examples, counterfactuals)
    # CE label: gold for real examples (the teacher's argmax with ce_label teacher), the teacher's for counterfactuals.
    ce_labels = [
        it.example.label
        if it.is_counterfactual or config.ce_label == "gold"
        else int(np.argmax(targets.logits[it.example.text]))
        for it in ts.items
    ]
    ce_weights = [0.0 if it.is_counterfactual and not config.ce_on_counterfactuals else 1.0 for it in ts.items]
    item_texts = [it.example.text for it in ts.items]
    logits = [targets.logits[t].astype(np.float32) for t in item_texts] if objective.teacher_logits else None
    states = [targets.states[t] for t in item_texts] if objective.teacher_states else None
    enc = tokenizer(item_texts, truncation=True, max_length=config.max_length)
    collate = make_collate(tokenizer, dict(enc), ce_labels, ce_weights, logits, states, layers.token_level)
    return TrainingData(ts, targets, ce_labels, ce_weights, collate, changed, time.perf_counter() - t0)


def make_optimizer(runner, config: DistillConfig):
    import torch

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [(n, p) for n, p in runner.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    try:  # the fused kernel: on CPU the default per-tensor loop costs about a third of a MiniLM step
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.learning_rate, foreach=True)


@dataclass(frozen=True)
class StepPlan:
    """The run's length and cadence in optimizer steps."""

    total: int
    steps_per_epoch: int
    batches_per_epoch: int  # mini-batches this process sees per epoch
    epochs: int
    eval_every: int
    checkpoint_every: int


def step_plan(config: DistillConfig, batches: int, processes: int) -> StepPlan:
    local = math.ceil(batches / processes)
    per_epoch = math.ceil(local / config.gradient_accumulation)
    # A fixed step count (max_steps) trains every k alike; otherwise the run is epochs x batches per epoch.
    total = config.max_steps or per_epoch * config.epochs
    eval_every = config.eval_every or max(1, math.ceil(total / config.evaluations))
    checkpoint_every = config.checkpoint_every or eval_every
    return StepPlan(total, per_epoch, local, math.ceil(total / per_epoch), eval_every, checkpoint_every)


# ----------------------------------------------------------------------------- one step
