"""`distill(config, teacher, student, examples, counterfactuals, validation, on_event, stop) -> DistillResult`.

One loop for the three methods (ce, kd, lwd) with or without CoD, run through `accelerate` (CPU, one GPU or
several: `accelerate launch -m cod distill ...`). The loop knows nothing of the UI: it reports through
`on_event(DistillEvent)` and checks `stop()` after every optimizer step. Teacher outputs are computed once per
unique training text before the first step; model selection uses the validation split only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cod.config import DistillConfig
from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.distill.batching import (
    PairBatchSampler,
    TrainingSet,
    build_training_set,
    candidate_texts,
    make_collate,
    real_half,
    refresh_verdicts,
    teacher_targets,
    tokenizers_match,
    uniform_layer_map,
)
from cod.errors import DistillError

__all__ = ["DistillEvent", "DistillResult", "build_training_set", "distill"]

log = logging.getLogger(__name__)


@dataclass
class DistillEvent:
    """One report from a run: kind is step | eval | done | stopped | error."""

    kind: str
    step: int
    total: int
    epoch: float
    losses: dict[str, float] = field(default_factory=dict)  # loss, ce, kd, lwd (mean over the step's micro-batches)
    metrics: dict[str, Any] = field(default_factory=dict)  # validation metrics (eval), final metrics (done)
    eta_s: float | None = None
    elapsed_s: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


@dataclass
class DistillResult:
    """The trained student (LoRA merged, best validation checkpoint), its metrics and the run's events."""

    model: Any
    tokenizer: Any
    metrics: dict[str, Any]
    out_dir: Path | None
    history: list[DistillEvent]
    config: DistillConfig
    training_set: TrainingSet | None = None

    @property
    def model_dir(self) -> Path | None:
        """Where the student was saved (`out_dir/model`), loadable with AutoModelForSequenceClassification."""
        from cod.distill.run_folder import MODEL_DIR

        return self.out_dir / MODEL_DIR if self.out_dir else None


def _stop_requested(stop) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


def _check_inputs(config: DistillConfig, examples, validation, label_names: list[str], teacher) -> None:
    n = len(label_names)
    for name, split in (("training", examples), ("validation", validation or [])):
        bad = [e for e in split if not 0 <= int(e.label) < n]
        if bad:
            raise DistillError(f"A {name} example has label {bad[0].label} but the labels are {label_names}: fix the data.")
    if len(examples) < 2:
        raise DistillError(f"Distillation needs at least 2 training examples, got {len(examples)}.")
    if teacher is None and (config.method != "ce" or config.cod):
        raise DistillError(f"Method {config.label!r} needs a teacher: load one (or use method ce without CoD).")
    if teacher is not None and teacher.num_labels != n:
        raise DistillError(
            f"The teacher has {teacher.num_labels} labels ({teacher.label_names}) but the data has {n} ({label_names}): "
            "choose a matching teacher or map the labels."
        )


def _accelerator(config: DistillConfig):
    import torch
    from accelerate import Accelerator

    # Mixed precision is a GPU feature here: on CPU (or MPS) the run stays float32 whatever was asked.
    precision = config.mixed_precision if torch.cuda.is_available() else "no"
    kwargs: dict[str, Any] = {"mixed_precision": precision, "gradient_accumulation_steps": config.gradient_accumulation}
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


def distill(
    config: DistillConfig,
    teacher,
    student,
    examples: Sequence[Example],
    counterfactuals: Sequence[Counterfactual] | None = None,
    validation: Sequence[Example] | None = None,
    on_event: Callable[[DistillEvent], None] | None = None,
    stop: Callable[[], bool] | Any | None = None,
    out_dir: str | Path | None = None,
    test: Sequence[Example] | None = None,
    label_names: Sequence[str] | None = None,
    run_info: dict[str, Any] | None = None,
) -> DistillResult:
    """Distil `teacher` into `student` (a name/path, or a (model, tokenizer) pair trained in place).

    `examples` is the full seeded k draw; with `config.cod` the run uses its real half plus their counterfactuals.
    `stop` is a callable or a threading.Event; `out_dir` gets checkpoints (resumed after a crash) and the run folder.
    """
    import torch
    from accelerate.utils import set_seed

    from cod.distill import run_folder as io
    from cod.distill import student as S
    from cod.distill.losses import ce_loss, kd_loss, layerwise_loss

    t_start = time.perf_counter()
    label_names = list(label_names or (teacher.label_names if teacher is not None else []))
    if not label_names:
        raise DistillError("No label names: pass label_names (or a teacher, whose labels are used).")
    examples, validation = list(examples), list(validation or [])
    if config.max_validation:
        validation = validation[: config.max_validation]
    _check_inputs(config, examples, validation, label_names, teacher)
    out_dir = Path(out_dir) if out_dir else None
    accelerator = _accelerator(config)
    set_seed(config.seed)

    # --- the student (seeded, so a fresh head is the same every run)
    student_name = student if isinstance(student, (str, Path)) else getattr(student[0].config, "_name_or_path", "") or "student"
    if isinstance(student, (str, Path)):
        model, tokenizer = S.load_student(str(student), label_names, head=config.head)
    else:
        model, tokenizer = student
    S.set_label_names(model, label_names)
    if tokenizer.pad_token is None:  # decoder-style tokenizers: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    head = S.head_kind(model)

    # --- LWD: uniform layer mapping; token-level only when both tokenizers cut every text the same way
    real_texts = [e.text for e in (real_half(examples) if config.cod else examples)]
    t_layers = lwd_mode = None
    if config.method == "lwd":
        s_layers, s_width = S.layer_count_and_width(model)
        t_count, t_width = S.layer_count_and_width(teacher.model)
        t_layers = uniform_layer_map(s_layers, t_count)
        same = tokenizers_match(teacher.tokenizer, tokenizer, candidate_texts(config, examples, counterfactuals), config.max_length)
        if config.lwd_mode == "token" and not same:
            raise DistillError("lwd_mode 'token' needs teacher and student to share a tokenizer: use 'pooled' or 'auto'.")
        lwd_mode = "token" if (config.lwd_mode == "token" or (config.lwd_mode == "auto" and same)) else "pooled"
    token_level = lwd_mode == "token"

    # --- teacher outputs, once per unique text (real examples and counterfactual candidates)
    t_teacher = time.perf_counter()
    cands = candidate_texts(config, examples, counterfactuals)
    if config.method == "ce" and config.ce_label == "gold":
        cands = [t for t in cands if t not in set(real_texts)]  # ce: the teacher only labels counterfactuals
    targets = None
    if cands and teacher is not None:
        max_len = config.max_length if token_level else getattr(teacher, "max_length", config.max_length)
        targets = teacher_targets(teacher, cands, t_layers, token_level, max_len)
    verdicts_changed = 0
    if config.cod and targets is not None:
        counterfactuals, verdicts_changed = refresh_verdicts(counterfactuals or [], targets.logits)
    teacher_seconds = time.perf_counter() - t_teacher
    ts = build_training_set(config, examples, counterfactuals)
    items = ts.items

    # --- per-item labels: gold for real examples (or the teacher's argmax), the teacher's argmax for counterfactuals
    def teacher_argmax(text: str) -> int:
        return int(np.argmax(targets.logits[text]))

    ce_labels = [
        it.example.label if it.is_counterfactual or config.ce_label == "gold" else teacher_argmax(it.example.text)
        for it in items
    ]
    ce_weights = [0.0 if it.is_counterfactual and not config.ce_on_counterfactuals else 1.0 for it in items]
    texts = [it.example.text for it in items]
    use_logits = config.method in ("kd", "lwd")
    item_logits = [targets.logits[t].astype(np.float32) for t in texts] if use_logits else None
    item_states = [targets.states[t] for t in texts] if config.method == "lwd" else None
    enc = tokenizer(texts, truncation=True, max_length=config.max_length)
    collate = make_collate(tokenizer, dict(enc), ce_labels, ce_weights, item_logits, item_states, token_level)

    # --- model, optimizer, schedule
    if config.lora:
        model = S.wrap_lora(model, config)
    if t_layers:  # one learned projection per mapped layer, student width -> teacher width
        runner = S.StudentRunner(model, len(t_layers), s_width, t_width)
    else:
        runner = S.StudentRunner(model)
    sampler = PairBatchSampler([it.pair_id for it in items], config.batch_size, config.seed)
    loader = torch.utils.data.DataLoader(list(range(len(items))), batch_sampler=sampler, collate_fn=collate)
    local_batches = math.ceil(len(sampler) / accelerator.num_processes)
    steps_per_epoch = math.ceil(local_batches / config.gradient_accumulation)
    # A fixed step count (max_steps) trains every k alike; otherwise the run is epochs x batches per epoch.
    total = config.max_steps or steps_per_epoch * config.epochs
    n_epochs = math.ceil(total / steps_per_epoch)
    eval_every = config.eval_every or max(1, math.ceil(total / config.evaluations))
    ckpt_every = config.checkpoint_every or eval_every
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [(n, p) for n, p in runner.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    try:  # the fused kernel: on CPU the default per-tensor loop costs about a third of a MiniLM step
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
    except (RuntimeError, ValueError):
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, foreach=True)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    runner, optimizer, loader = accelerator.prepare(runner, optimizer, loader)
    trainable = [p for p in runner.parameters() if p.requires_grad]

    # --- resume
    fp = io.fingerprint(config.to_dict(), [(it.example.text, ce) for it, ce in zip(items, ce_labels)], str(student_name))
    history: list[DistillEvent] = []
    step, start_epoch, start_batch = 0, 0, 0
    best = {"metric": -math.inf, "step": 0, "metrics": {}, "state": None, "stale": 0}
    resumed_from = None
    if out_dir is not None and config.resume:
        loaded = io.load_checkpoint(out_dir, fp)
        if loaded is not None:
            state, best_state = loaded
            accelerator.unwrap_model(runner).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step, start_epoch, start_batch = state["step"], state["epoch"], state["batch"]
            best = {**state["best"], "state": best_state}
            history = [DistillEvent(**e) for e in state["history"]]
            io.set_rng_state(state["rng"])
            resumed_from = step
            log.info("resuming %s from step %d", out_dir, step)

    def trainable_state() -> dict:
        # Only what training changes (the full model, or LoRA adapters + head + projections): (name -> CPU tensor).
        unwrapped = accelerator.unwrap_model(runner)
        return {n: p.detach().cpu().clone() for n, p in unwrapped.named_parameters() if p.requires_grad}

    def emit(event: DistillEvent) -> None:
        history.append(event)
        if on_event is not None and accelerator.is_main_process:
            if event.kind != "error":
                on_event(event)
                return
            try:  # reporting an error must not hide it
                on_event(event)
            except Exception:  # noqa: BLE001
                log.exception("on_event failed while reporting an error")

    def checkpoint(epoch: int, batch: int) -> None:
        if out_dir is None or not accelerator.is_main_process:
            return
        io.save_checkpoint(out_dir, {
            "fingerprint": fp, "step": step, "epoch": epoch, "batch": batch,
            "model": accelerator.unwrap_model(runner).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": io.rng_state(),
            "best": {k: v for k, v in best.items() if k != "state"}, "history": [e.to_dict() for e in history],
        })

    eval_seconds = 0.0

    def evaluate_now(epoch_f: float) -> dict:
        nonlocal eval_seconds
        if not validation:
            return {}
        t0 = time.perf_counter()
        metrics = S.validation_metrics(accelerator.unwrap_model(runner).student, tokenizer, validation, config, label_names)
        eval_seconds += time.perf_counter() - t0
        score = metrics[f"val_{config.selection_metric}"]
        if score > best["metric"]:
            best.update(metric=score, step=step, metrics=metrics, state=trainable_state(), stale=0)
            if out_dir is not None and accelerator.is_main_process:
                io.save_best(out_dir, best["state"])
        else:
            best["stale"] += 1
        metrics.update(best_step=best["step"], best_metric=best["metric"])
        emit(DistillEvent("eval", step, total, epoch_f, metrics=metrics, elapsed_s=time.perf_counter() - t_start))
        if config.tracker:
            accelerator.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)
        return metrics

    if config.tracker:
        accelerator.init_trackers("cod-studio", config=config.to_dict())
    runner.train()
    stopped = early_stopped = False
    last_eval_step = -1
    t_train, steps_at_start = time.perf_counter(), step
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, n_epochs):
            sampler.set_epoch(epoch)
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            skip = start_batch if epoch == start_epoch else 0
            parts_acc: list[dict[str, float]] = []
            for b, batch in enumerate(loader):
                if b < skip:  # resumed mid-epoch: these batches were trained before the checkpoint
                    continue
                with accelerator.accumulate(runner):
                    logits, states = runner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                            with_states=config.method == "lwd", token_level=token_level)
                    ce = ce_loss(logits, batch["labels"], batch["ce_weights"])
                    loss, parts = ce, {"ce": ce.item()}
                    if use_logits:
                        kd = kd_loss(logits, batch["teacher_logits"], config.temperature)
                        loss, parts["kd"] = loss + config.alpha * kd, kd.item()
                    if config.method == "lwd":
                        mask = batch["attention_mask"] if token_level else None
                        lw = layerwise_loss(states, batch["teacher_states"], None, mask=mask)
                        loss, parts["lwd"] = loss + config.beta * lw, lw.item()
                    parts["loss"] = loss.item()
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(trainable, 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
                parts_acc.append(parts)
                if not accelerator.sync_gradients:
                    continue
                scheduler.step()
                step += 1
                done_steps = step - steps_at_start
                eta = (time.perf_counter() - t_train) / done_steps * (total - step)
                losses = {k: float(np.mean([p[k] for p in parts_acc])) for k in parts_acc[0]}
                losses["lr"] = scheduler.get_last_lr()[0]
                parts_acc = []
                epoch_f = epoch + (b + 1) / max(1, local_batches)
                emit(DistillEvent("step", step, total, round(epoch_f, 4), losses=losses, eta_s=eta,
                                  elapsed_s=time.perf_counter() - t_start))
                if config.tracker:
                    accelerator.log({f"train/{k}": v for k, v in losses.items()}, step=step)
                if step % eval_every == 0 or step == total:
                    evaluate_now(round(epoch_f, 4))
                    last_eval_step = step
                    if config.patience and best["stale"] >= config.patience:
                        early_stopped = True
                next_pos = (epoch + 1, 0) if b + 1 >= local_batches else (epoch, b + 1)
                stopped = _stop_requested(stop)
                if step % ckpt_every == 0 or stopped:
                    checkpoint(*next_pos)
                if stopped or early_stopped or step >= total:
                    break
            if stopped or early_stopped or step >= total:
                break
    except Exception as err:
        emit(DistillEvent("error", step, total, float(epoch), message=f"{type(err).__name__}: {err}",
                          elapsed_s=time.perf_counter() - t_start))
        raise
    train_seconds = time.perf_counter() - t_train - eval_seconds  # optimizer steps only, validation excluded

    # --- the best validation checkpoint (the last state counts too)
    if validation and last_eval_step != step:
        evaluate_now(float(epoch + 1))
    unwrapped = accelerator.unwrap_model(runner)
    if best["state"] is not None:
        unwrapped.load_state_dict(best["state"], strict=False)
    model = S.export_model(unwrapped.student).eval()

    # --- final metrics: validation (selection) and test (only evaluated, never used to choose)
    metrics: dict[str, Any] = {
        "method": config.label, "k": config.k, "seed": config.seed, "head": head, "lora": config.lora,
        "lwd_mode": lwd_mode, "lwd_teacher_layers": t_layers,
        "student_validation_accuracy": best["metrics"].get("val_accuracy"),
        "student_validation_macro_f1": best["metrics"].get("val_macro_f1"),
        "best_step": best["step"] if validation else step, "selection": "validation" if validation else "last",
        "steps": step, "total_steps": total, "epochs_run": round(step / max(1, steps_per_epoch), 3),
        "stopped": stopped, "early_stopped": early_stopped, "resumed_from_step": resumed_from,
        "teacher_train_forward_passes": targets.requested if targets else 0,
        "teacher_train_cache_misses": targets.new_forwards if targets else 0,
        "counterfactual_verdicts_changed": verdicts_changed,
        **ts.counts(),
        "device": str(accelerator.device), "num_processes": accelerator.num_processes,
        "mixed_precision": str(accelerator.mixed_precision),
        "trainable_params": sum(p.numel() for p in trainable),
    }
    t_eval = time.perf_counter()
    if teacher is not None and validation:
        t_val = teacher.predict([e.text for e in validation])
        metrics["teacher_validation_accuracy"] = float((t_val == np.array([e.label for e in validation])).mean())
    if test and not stopped:
        from cod.eval.metrics import StudentScorer, evaluate

        scorer = StudentScorer(model, tokenizer, max_length=config.max_length, batch_size=config.eval_batch_size)
        if teacher is not None:
            m = evaluate(teacher, scorer, list(test), label_names)
            for key, value in m.items():
                name = key.replace("student_", "student_test_", 1).replace("teacher_", "teacher_test_", 1)
                metrics[name if name != key else f"test_{key}"] = value
        else:
            preds = scorer.predict([e.text for e in test])
            metrics["student_test_accuracy"] = float((preds == np.array([e.label for e in test])).mean())
    eval_seconds += time.perf_counter() - t_eval
    metrics.update(
        teacher_seconds=round(teacher_seconds, 3), train_seconds=round(train_seconds, 3),
        eval_seconds=round(eval_seconds, 3),
        steps_per_second=round((step - steps_at_start) / train_seconds, 4) if train_seconds > 0 else None,
        peak_memory_mb=io.peak_memory_mb(),
    )
    metrics["wall_seconds"] = round(time.perf_counter() - t_start, 3)

    # --- the run folder
    if out_dir is not None and accelerator.is_main_process:
        io.write_run_folder(out_dir, config, metrics, model, tokenizer, ts, targets, ce_labels, ce_weights,
                          label_names, teacher, str(student_name), run_info or {})
    if config.tracker:
        accelerator.end_training()
    kind = "stopped" if stopped else "done"
    emit(DistillEvent(kind, step, total, float(epoch + (0 if stopped else 1)), metrics=metrics,
                      elapsed_s=metrics["wall_seconds"]))
    return DistillResult(model, tokenizer, metrics, out_dir, history, config, ts)
