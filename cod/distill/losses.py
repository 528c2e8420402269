"""Distillation losses as plain functions over tensors (no models, no state).

Student loss in the paper (Hamman et al., 2025): CE(student, label) + alpha * kd_loss(...)
[+ beta * layerwise_loss(...)].
Each method (ce, kd, lwd) is one objective over these terms (`OBJECTIVES`); the trainer calls the one it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy, mean over the examples that carry weight (weights 0 drop an example's CE)."""
    per_example = F.cross_entropy(logits.float(), labels, reduction="none")  # (batch,)
    if weights is None:
        return per_example.mean()
    weights = weights.to(per_example.dtype)
    # Mean over weighted examples, not the batch: dropping CE on counterfactuals must not shrink the real ones' CE.
    return (per_example * weights).sum() / weights.sum().clamp_min(1.0)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 2.0) -> torch.Tensor:
    """KL(teacher || student) of the softened distributions at temperature T, batch mean, times T^2 (Hinton et al.)."""
    if T <= 0:
        raise ValueError(f"temperature T must be positive, got {T}.")
    log_p_student = F.log_softmax(student_logits.float() / T, dim=-1)  # (batch, num_labels)
    log_p_teacher = F.log_softmax(teacher_logits.float() / T, dim=-1)  # (batch, num_labels)
    # T^2 keeps the gradient scale of the soft term comparable across temperatures.
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * (T * T)


def layerwise_loss(
    student_states: Sequence[torch.Tensor],
    teacher_states: Sequence[torch.Tensor],
    projections: Sequence[torch.nn.Module] | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over mapped layers of the MSE between projected student states and teacher states.

    States are (batch, hidden) for pooled states or (batch, tokens, hidden) for token-level ones; `projections[i]`
    maps the student's hidden size to the teacher's (identity when None); `mask` (batch, tokens) marks real tokens.
    """
    if len(student_states) != len(teacher_states):
        raise ValueError(
            f"{len(student_states)} student layers but {len(teacher_states)} teacher layers: map them one to one."
        )
    if not student_states:
        raise ValueError("layerwise_loss needs at least one pair of layers.")
    losses = []
    for i, (s, t) in enumerate(zip(student_states, teacher_states)):
        s = s.float()
        if projections is not None and projections[i] is not None:
            s = projections[i](s)  # (..., teacher_hidden)
        t = t.float()
        if mask is not None and s.dim() == 3:
            m = mask[:, : s.shape[1]].to(s.dtype).unsqueeze(-1)  # (batch, tokens, 1)
            diff = (s - t[:, : s.shape[1]]) ** 2 * m
            losses.append(diff.sum() / (m.sum() * s.shape[-1]).clamp_min(1.0))
        else:
            losses.append(F.mse_loss(s, t))
    return torch.stack(losses).mean()


# ----------------------------------------------------------------------------- one loss computation per method
#
# A method's objective takes the student's outputs on a mini-batch and the batch's targets, and returns its loss terms:
# "loss" (what is minimised) and each weighted part (for the progress report). The batch carries
#   labels (batch,)  ce_weights (batch,)  teacher_logits (batch, L)  teacher_states [(batch, H) | (batch, tokens, H)]
#   state_mask (batch, tokens): real tokens of token-level states (absent for pooled states).


def ce_objective(logits, states, batch, config) -> dict[str, torch.Tensor]:
    """CE only: the few-shot baseline without a teacher signal (counterfactuals carry the teacher's argmax)."""
    ce = ce_loss(logits, batch["labels"], batch["ce_weights"])
    return {"loss": ce, "ce": ce}


def kd_objective(logits, states, batch, config) -> dict[str, torch.Tensor]:
    """CE + alpha * KD(teacher || student) at temperature T."""
    terms = ce_objective(logits, states, batch, config)
    kd = kd_loss(logits, batch["teacher_logits"], config.temperature)
    return {**terms, "loss": terms["loss"] + config.alpha * kd, "kd": kd}


def lwd_objective(logits, states, batch, config) -> dict[str, torch.Tensor]:
    """KD + beta * layer-wise MSE between the projected student states and the mapped teacher layers."""
    terms = kd_objective(logits, states, batch, config)
    lwd = layerwise_loss(states, batch["teacher_states"], None, mask=batch.get("state_mask"))
    return {**terms, "loss": terms["loss"] + config.beta * lwd, "lwd": lwd}


@dataclass(frozen=True)
class Objective:
    """What a method trains on (the teacher targets a batch must carry) and its loss computation."""

    loss: Callable[..., dict[str, torch.Tensor]]
    teacher_logits: bool
    teacher_states: bool


OBJECTIVES = {
    "ce": Objective(ce_objective, teacher_logits=False, teacher_states=False),
    "kd": Objective(kd_objective, teacher_logits=True, teacher_states=False),
    "lwd": Objective(lwd_objective, teacher_logits=True, teacher_states=True),
}
