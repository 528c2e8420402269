"""`distill(config, teacher, student, examples, counterfactuals, validation, ...) -> DistillResult`.

One loop for the three methods (ce, kd, lwd) with or without CoD, run through `accelerate` (CPU, one GPU or
several: `accelerate launch -m cod distill ...`). A method is one objective (`cod.distill.losses.OBJECTIVES`):
the loss it computes and the teacher targets its batches carry; nothing else in the loop depends on it.
The loop knows nothing of the UI: it reports through `on_event(DistillEvent)` and checks `stop()` after every
optimizer step. Teacher outputs are computed once per unique training text before the first step; checkpoints are
chosen on held-out texts only (`cod.distill.selection`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cod.config import DistillConfig
from cod.counterfactuals.base import Counterfactual
from cod.data import Example
from cod.distill import checkpoint as ckpt
from cod.distill import student as S
from cod.distill.batching import (
    PairBatchSampler,
    TrainingSet,
    build_training_set,
    candidate_texts,
)
from cod.distill.losses import OBJECTIVES, Objective
from cod.distill.run_folder import MODEL_DIR, peak_memory_mb, write_run_folder
from cod.distill.selection import Selection, held_out, selection_metrics
from cod.distill.setup import (
    LayerPlan,
    StepPlan,
    TrainingData,
    check_inputs,
    layer_plan,
    load_student,
    make_accelerator,
    make_optimizer,
    step_plan,
    training_data,
)
from cod.errors import DistillError
from cod.modeling.inference import predict_logits

__all__ = ["DistillEvent", "DistillResult", "build_training_set", "distill", "training_step"]

log = logging.getLogger(__name__)


@dataclass
class DistillEvent:
    """One report from a run: kind is step | eval | done | stopped | error."""

    kind: str
    step: int
    total: int
    epoch: float
    losses: dict[str, float] = field(default_factory=dict)  # loss, ce, kd, lwd (mean over the step's micro-batches)
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out metrics (eval), final metrics (done)
    eta_s: float | None = None
    elapsed_s: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


@dataclass
class DistillResult:
    """The trained student (LoRA merged, the selected checkpoint), its metrics and the run's events."""

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
        return self.out_dir / MODEL_DIR if self.out_dir else None


# ----------------------------------------------------------------------------- preparing a run


def _stop_requested(stop) -> bool:
    if stop is None:
        return False
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())


def training_step(
    runner, batch: dict[str, Any], objective: Objective, config: DistillConfig, optimizer, accelerator
) -> dict[str, float]:
    """One forward and backward on a mini-batch with the method's loss; the optimizer steps when gradient
    accumulation says so. Returns the loss terms as floats ("loss" and its parts: ce, kd, lwd)."""
    with accelerator.accumulate(runner):
        logits, states = runner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        terms = objective.loss(logits, states, batch, config)  # {"loss": total, "ce": ..., ...}
        accelerator.backward(terms["loss"])
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_([p for p in runner.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return {name: value.item() for name, value in terms.items()}


# ----------------------------------------------------------------------------- the loop


@dataclass
class _Trainer:
    """The prepared run: what the loop steps, evaluates, reports and saves."""

    config: DistillConfig
    objective: Objective
    accelerator: Any
    runner: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    loader: Any
    sampler: PairBatchSampler
    plan: StepPlan
    selection: Selection
    label_names: list[str]
    out_dir: Path | None
    fingerprint: str
    on_event: Callable[[DistillEvent], None] | None
    stop: Any
    t_start: float
    step: int = 0
    epoch: int = 0  # where the next step starts: epoch and batch within it
    batch: int = 0
    history: list[DistillEvent] = field(default_factory=list)
    best_weights: dict | None = None
    stopped: bool = False
    last_eval_step: int = -1
    eval_seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.stopped or self.selection.exhausted or self.step >= self.plan.total

    def emit(self, event: DistillEvent) -> None:
        self.history.append(event)
        if self.on_event is None or not self.accelerator.is_main_process:
            return
        if event.kind != "error":
            self.on_event(event)
            return
        try:  # reporting an error must not hide it
            self.on_event(event)
        except Exception:  # noqa: BLE001
            log.exception("on_event failed while reporting an error")

    def log(self, values: dict[str, Any]) -> None:
        if self.config.tracker:
            self.accelerator.log({k: v for k, v in values.items() if isinstance(v, int | float)}, step=self.step)

    def trainable_weights(self) -> dict:
        # Only what training changes (the full model, or LoRA adapters + head + projections): name -> CPU tensor.
        unwrapped = self.accelerator.unwrap_model(self.runner)
        return {n: p.detach().cpu().clone() for n, p in unwrapped.named_parameters() if p.requires_grad}

    def evaluate(self, epoch: float) -> None:
        """Score the held-out texts, keep the weights when they are the best so far, report."""
        if not self.selection.active:
            return
        t0 = time.perf_counter()
        held, config = self.selection.held, self.config
        model = self.accelerator.unwrap_model(self.runner).student
        logits = predict_logits(model, self.tokenizer, held.texts, config.max_length, config.eval_batch_size)
        preds = logits.argmax(axis=1)  # (n,)
        metrics = selection_metrics(preds, held, self.label_names)
        self.eval_seconds += time.perf_counter() - t0
        if self.selection.update(self.step, metrics):
            self.best_weights = self.trainable_weights()
            if self.out_dir is not None and self.accelerator.is_main_process:
                ckpt.save_best(self.out_dir, self.best_weights)
        metrics.update(selection=held.mode, best_step=self.selection.best_step, best_metric=self.selection.best_score)
        self.last_eval_step = self.step
        self.emit(
            DistillEvent(
                "eval",
                self.step,
                self.plan.total,
                epoch,
                metrics=metrics,
                elapsed_s=time.perf_counter() - self.t_start,
            )
        )
        self.log(metrics)

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a resumed run needs, in one dictionary (checkpoint/last.pt)."""
        return {
            "fingerprint": self.fingerprint,
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "model": self.accelerator.unwrap_model(self.runner).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
            "selection": self.selection.state_dict(),
            "history": [e.to_dict() for e in self.history],
        }

    def save_checkpoint(self) -> None:
        if self.out_dir is not None and self.accelerator.is_main_process:
            ckpt.save_checkpoint(self.out_dir, self.checkpoint_state())

    def resume(self) -> int | None:
        """Continue from out_dir's checkpoint of this same run; the step resumed from, or None."""
        loaded = ckpt.load_checkpoint(self.out_dir, self.fingerprint) if self.out_dir and self.config.resume else None
        if loaded is None:
            return None
        state, self.best_weights = loaded
        self.accelerator.unwrap_model(self.runner).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.selection.load_state_dict(state["selection"])
        self.history = [DistillEvent(**e) for e in state["history"]]
        ckpt.set_rng_state(state["rng"])
        log.info("resuming %s from step %d", self.out_dir, self.step)
        return self.step

    def report_step(self, parts: list[dict[str, float]], epoch: float, started: tuple[float, int]) -> None:
        t0, step0 = started
        eta = (time.perf_counter() - t0) / (self.step - step0) * (self.plan.total - self.step)
        losses = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
        losses["lr"] = self.scheduler.get_last_lr()[0]
        self.emit(
            DistillEvent(
                "step",
                self.step,
                self.plan.total,
                round(epoch, 4),
                losses=losses,
                eta_s=eta,
                elapsed_s=time.perf_counter() - self.t_start,
            )
        )
        self.log({f"train/{k}": v for k, v in losses.items()})

    def train(self) -> None:
        """Steps until the schedule ends, `stop` is set or patience runs out; evaluates and checkpoints on the way."""
        plan, started = self.plan, (time.perf_counter(), self.step)
        first_epoch, skip = self.epoch, self.batch
        self.runner.train()
        for epoch in range(first_epoch, plan.epochs):
            self.sampler.set_epoch(epoch)
            if hasattr(self.loader, "set_epoch"):
                self.loader.set_epoch(epoch)
            parts: list[dict[str, float]] = []
            for b, batch in enumerate(self.loader):
                if epoch == first_epoch and b < skip:  # resumed mid-epoch: trained before the checkpoint
                    continue
                parts.append(
                    training_step(self.runner, batch, self.objective, self.config, self.optimizer, self.accelerator)
                )
                if not self.accelerator.sync_gradients:
                    continue
                self.scheduler.step()
                self.step += 1
                self.epoch, self.batch = (epoch + 1, 0) if b + 1 >= plan.batches_per_epoch else (epoch, b + 1)
                epoch_f = epoch + (b + 1) / max(1, plan.batches_per_epoch)
                self.report_step(parts, epoch_f, started)
                parts = []
                if self.step % plan.eval_every == 0 or self.step == plan.total:
                    self.evaluate(round(epoch_f, 4))
                self.stopped = _stop_requested(self.stop)
                if self.step % plan.checkpoint_every == 0 or self.stopped:
                    self.save_checkpoint()
                if self.finished:
                    return


# ----------------------------------------------------------------------------- after the loop


def _test_metrics(model, tokenizer, teacher, test, label_names, config: DistillConfig) -> dict[str, Any]:
    """Test accuracy of the student (and the teacher's, and their agreement): reported, never used to choose."""
    from cod.eval.metrics import StudentScorer, evaluate

    scorer = StudentScorer(model, tokenizer, max_length=config.max_length, batch_size=config.eval_batch_size)
    if teacher is None:
        preds = scorer.predict([e.text for e in test])
        return {"student_test_accuracy": float((preds == np.array([e.label for e in test])).mean())}
    out = {}
    for key, value in evaluate(teacher, scorer, list(test), label_names).items():
        name = key.replace("student_", "student_test_", 1).replace("teacher_", "teacher_test_", 1)
        out[name if name != key else f"test_{key}"] = value
    return out


def _run_metrics(
    t: _Trainer, data: TrainingData, layers: LayerPlan, head: str, resumed_from, teacher
) -> dict[str, Any]:
    config, held = t.config, t.selection.held
    metrics: dict[str, Any] = {
        "method": config.label,
        "k": config.k,
        "seed": config.seed,
        "head": head,
        "lora": config.lora,
        "lwd_mode": layers.mode,
        "lwd_teacher_layers": layers.teacher_layers,
        **t.selection.summary(t.step),
        "steps": t.step,
        "total_steps": t.plan.total,
        "epochs_run": round(t.step / max(1, t.plan.steps_per_epoch), 3),
        "stopped": t.stopped,
        "early_stopped": t.selection.exhausted,
        "resumed_from_step": resumed_from,
        "teacher_train_forward_passes": data.targets.requested if data.targets else 0,
        "teacher_train_cache_misses": data.targets.new_forwards if data.targets else 0,
        "counterfactual_verdicts_changed": data.verdicts_changed,
        **data.ts.counts(),
        "device": str(t.accelerator.device),
        "num_processes": t.accelerator.num_processes,
        "mixed_precision": str(t.accelerator.mixed_precision),
        "trainable_params": sum(p.numel() for p in t.runner.parameters() if p.requires_grad),
    }
    if teacher is not None and held.mode == "validation":
        metrics["teacher_validation_accuracy"] = float((teacher.predict(held.texts) == held.labels).mean())
    return metrics


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
    unlabelled: Sequence[str] | None = None,
) -> DistillResult:
    """Distil `teacher` into `student` (a name/path, or a (model, tokenizer) pair trained in place).

    `examples` is the full seeded k draw; with `config.cod` the run uses its real half plus their counterfactuals.
    The checkpoint is chosen on `validation` (labelled), else on agreement with the teacher on `unlabelled` texts,
    else the last step is kept. `stop` is a callable or a threading.Event; `out_dir` gets checkpoints (resumed after
    a crash) and the run folder.
    """
    import torch
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    t_start = time.perf_counter()
    label_names = list(label_names or (teacher.label_names if teacher is not None else []))
    if not label_names:
        raise DistillError("No label names: pass label_names (or a teacher, whose labels are used).")
    examples, objective = list(examples), OBJECTIVES[config.method]
    check_inputs(config, examples, validation, label_names, teacher)
    out_dir = Path(out_dir) if out_dir else None
    accelerator = make_accelerator(config)
    set_seed(config.seed)

    model, tokenizer, student_name = load_student(student, label_names, config)
    head = S.head_kind(model)
    texts = candidate_texts(config, examples, counterfactuals)
    layers = layer_plan(config, objective, teacher, model, tokenizer, texts)
    data = training_data(config, objective, teacher, tokenizer, examples, counterfactuals, layers)
    selection = Selection(
        held_out(validation, unlabelled, teacher, data.texts, config.max_validation),
        config.selection_metric,
        config.patience,
    )

    if config.lora:
        model = S.wrap_lora(model, config)
    # One learned projection per mapped layer (student width -> teacher width) when the method compares states.
    runner = S.StudentRunner(model, len(layers.teacher_layers or []), *layers.widths, token_level=layers.token_level)
    sampler = PairBatchSampler([it.pair_id for it in data.ts.items], config.batch_size, config.seed)
    indices = list(range(len(data.ts.items)))
    loader = torch.utils.data.DataLoader(indices, batch_sampler=sampler, collate_fn=data.collate)
    plan = step_plan(config, len(sampler), accelerator.num_processes)
    optimizer = make_optimizer(runner, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * plan.total), plan.total)
    runner, optimizer, loader = accelerator.prepare(runner, optimizer, loader)
    fingerprint = ckpt.fingerprint(config.to_dict(), list(zip(data.texts, data.ce_labels)), student_name)
    t = _Trainer(
        config,
        objective,
        accelerator,
        runner,
        tokenizer,
        optimizer,
        scheduler,
        loader,
        sampler,
        plan,
        selection,
        label_names,
        out_dir,
        fingerprint,
        on_event,
        stop,
        t_start,
    )
    resumed_from = t.resume()

    if config.tracker:
        accelerator.init_trackers("cod-studio", config=config.to_dict())
    t_train = time.perf_counter()
    try:
        t.train()
    except Exception as err:
        t.emit(
            DistillEvent(
                "error",
                t.step,
                plan.total,
                float(t.epoch),
                message=f"{type(err).__name__}: {err}",
                elapsed_s=time.perf_counter() - t_start,
            )
        )
        raise
    train_seconds = time.perf_counter() - t_train - t.eval_seconds  # optimizer steps only, evaluation excluded
    if t.last_eval_step != t.step:  # the last state is a candidate too
        t.evaluate(float(t.epoch))
    unwrapped = accelerator.unwrap_model(t.runner)
    if t.best_weights is not None:
        unwrapped.load_state_dict(t.best_weights, strict=False)
    model = S.export_model(unwrapped.student).eval()

    metrics = _run_metrics(t, data, layers, head, resumed_from, teacher)
    t_eval = time.perf_counter()
    if test and not t.stopped:
        metrics.update(_test_metrics(model, tokenizer, teacher, test, label_names, config))
    eval_seconds = t.eval_seconds + time.perf_counter() - t_eval
    metrics.update(
        teacher_seconds=round(data.teacher_seconds, 3),
        train_seconds=round(train_seconds, 3),
        eval_seconds=round(eval_seconds, 3),
        steps_per_second=round((t.step - (resumed_from or 0)) / train_seconds, 4) if train_seconds > 0 else None,
        peak_memory_mb=peak_memory_mb(),
        wall_seconds=round(time.perf_counter() - t_start, 3),
    )
    if out_dir is not None and accelerator.is_main_process:
        write_run_folder(
            out_dir,
            config,
            metrics,
            model,
            tokenizer,
            data.ts,
            data.targets,
            data.ce_labels,
            data.ce_weights,
            label_names,
            teacher,
            student_name,
            run_info or {},
        )
    if config.tracker:
        accelerator.end_training()
    kind = "stopped" if t.stopped else "done"
    t.emit(DistillEvent(kind, t.step, plan.total, float(t.epoch), metrics=metrics, elapsed_s=metrics["wall_seconds"]))
    return DistillResult(model, tokenizer, metrics, out_dir, t.history, config, data.ts)
