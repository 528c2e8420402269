"""The student side of a distillation run: loading (head choice), LoRA adapters, LWD projections, export.

`StudentRunner` wraps the student and the learned LWD projections in one module, so `accelerate` (DDP on several
GPUs) sees every trained parameter, and one forward gives logits and the mapped layers' states.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from cod.config import DistillConfig
from cod.errors import ModelError
from cod.modeling.heads import mean_pool

log = logging.getLogger(__name__)


def load_student(name: str, label_names: list[str], head: str = "auto", trust_remote_code: bool = False):
    """(model, tokenizer) with a fresh head labelled `label_names` (see `cod.modeling.loading.load_student`)."""
    from cod.modeling.loading import load_student as models_load_student

    return models_load_student(name, label_names=label_names, head=head, trust_remote_code=trust_remote_code)


def head_kind(model) -> str:
    """'mean' for cod's mean-pooling head, else 'cls' (the architecture's own head)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "cod_head", None):
        return base.cod_head
    return "mean" if type(base).__name__ == "MeanPoolingForSequenceClassification" else "cls"


def set_label_names(model, label_names: list[str]) -> None:
    """Write label names into the model's config (saved with it, read back by the Auto classes)."""
    if model.config.num_labels != len(label_names):
        raise ModelError(
            f"The student has {model.config.num_labels} labels but the data has {len(label_names)} ({label_names}): "
            "load the student by name so it gets a fresh head, or pass a model with a matching head."
        )
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {n: i for i, n in enumerate(label_names)}


def lora_targets(model) -> list[str]:
    """Attention projections to adapt: peft's table for the architecture, else found by name."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    from cod.modeling.heads import lora_target_modules

    model_type = getattr(model.config, "model_type", "")
    encoder = getattr(model.config, "encoder", None)  # cod's mean-pooling head wraps an encoder config
    for mt in (model_type, getattr(encoder, "model_type", None)):
        if mt in TABLE:
            return list(TABLE[mt])
    try:
        return lora_target_modules(model)
    except ValueError as err:
        raise ModelError(f"LoRA: {err} Train the full model instead (lora off).") from err


def wrap_lora(model, config: DistillConfig):
    """The student with LoRA adapters on its attention projections; the classification head stays fully trained."""
    from peft import LoraConfig, TaskType, get_peft_model

    # The classification head: the Linear layers that output one value per label (kept fully trained).
    heads = sorted(
        {
            n.rsplit(".", 1)[-1]
            for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.out_features == model.config.num_labels
        }
    )
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_targets(model),
        modules_to_save=heads or None,
    )
    return get_peft_model(model, lora)


def export_model(model):
    """A plain transformers model to save: LoRA adapters merged into the weights."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def layer_count_and_width(model) -> tuple[int, int]:
    """(number of transformer layers, hidden size) from a model's config."""
    cfg = model.config
    try:
        return int(cfg.num_hidden_layers), int(cfg.hidden_size)
    except AttributeError as err:
        raise ModelError(
            f"LWD needs num_hidden_layers and hidden_size in the model config ({type(cfg).__name__})."
        ) from err


class StudentRunner(nn.Module):
    """Student + LWD projections (student width -> teacher width, one per mapped layer), applied in forward so that
    DDP on several GPUs sees them as part of the model. Without projections it returns no states."""

    def __init__(
        self,
        student: nn.Module,
        projections: int = 0,
        student_width: int = 0,
        teacher_width: int = 0,
        token_level: bool = False,
    ):
        super().__init__()
        self.student = student
        self.projections = nn.ModuleList(nn.Linear(student_width, teacher_width) for _ in range(projections))
        self.token_level = token_level

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """Logits (batch, L) and, with projections, one projected state per student layer: (batch, Ht) pooled or
        (batch, tokens, Ht) token-level; else None."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        with_states = len(self.projections) > 0
        out = self.student(**kwargs, output_hidden_states=with_states)
        if not with_states:
            return out.logits, None
        if out.hidden_states is None:
            raise ModelError("The student returns no hidden states: use method kd instead of lwd.")
        layers = out.hidden_states[1:]  # skip the embeddings: one (batch, tokens, Hs) state per transformer layer
        if not self.token_level:
            layers = [mean_pool(h, attention_mask) for h in layers]  # (batch, Hs) each
        return out.logits, [proj(h.float()) for proj, h in zip(self.projections, layers)]
