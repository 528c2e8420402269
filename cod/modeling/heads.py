"""A mean-pooling classification head over any Hugging Face encoder, loadable with the Auto classes.

Sentence-transformer checkpoints (all-mpnet-base-v2, all-MiniLM-L6-v2) were trained to be read through the mean
of their token states, not through the CLS token and a pooler; `MeanPoolingForSequenceClassification` puts a linear
classifier on that mean. Its config holds the encoder's config as a sub-config, so a saved model is one folder that
`AutoModelForSequenceClassification.from_pretrained(path)` loads once `register()` has run (cod's loaders call it).
Weights are named `encoder.*` (the encoder's own names, so peft LoRA finds `query`/`value`/`q`/`v` by name) and
`classifier.*` (peft keeps it trainable with task_type SEQ_CLS).
"""

from __future__ import annotations

import copy
import functools
import inspect

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "cod-mean-pooling"


@strict
class MeanPoolingConfig(PreTrainedConfig):
    """Config of `MeanPoolingForSequenceClassification`: the encoder's config plus the head's settings."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: PreTrainedConfig | dict | None = None
    classifier_dropout: float | int = 0.1
    pooling: str = "mean"

    @property
    def hidden_size(self) -> int:
        """The encoder's hidden size (width of the pooled vector and of every hidden state)."""
        return self.encoder.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        """The encoder's number of layers (hidden_states has this many + 1 entries)."""
        return self.encoder.num_hidden_layers


def _encoder_from_config(config: PreTrainedConfig) -> PreTrainedModel:
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(config)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the token states over real (unpadded) tokens: (batch, seq, H), (batch, seq) -> (batch, H)."""
    if attention_mask is None:
        return last_hidden_state.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (batch, seq, 1)
    return (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class MeanPoolingForSequenceClassification(PreTrainedModel):
    """Encoder -> mean of token states -> dropout -> linear classifier; behaves like an HF sequence classifier."""

    config_class = MeanPoolingConfig
    config: MeanPoolingConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True

    def __init__(self, config: MeanPoolingConfig, encoder: PreTrainedModel | None = None):
        attn = encoder.config._attn_implementation if encoder is not None else None
        super().__init__(config)
        # An encoder already loaded with weights is used as is (its weights are flagged as initialised).
        self.encoder = encoder if encoder is not None else _encoder_from_config(config.encoder)
        self.config.encoder = self.encoder.config  # one config object, so changes stay in sync
        if attn is not None:  # the wrapper's config init resets sub-configs' attention; keep the encoder's own
            self.encoder.config._attn_implementation = attn
        self.dropout = nn.Dropout(float(config.classifier_dropout))
        self.classifier = nn.Linear(config.encoder.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_encoder(
        cls, encoder_path: str, label_names: list[str] | tuple[str, ...], classifier_dropout: float = 0.1, **kwargs
    ) -> MeanPoolingForSequenceClassification:
        """A fresh head with `label_names` on a pretrained encoder (Hub id or local path)."""
        try:  # the pooler (CLS dense layer) is unused by mean pooling: leave it out where the class allows
            encoder = AutoModel.from_pretrained(encoder_path, add_pooling_layer=False, **kwargs)
        except TypeError:
            encoder = AutoModel.from_pretrained(encoder_path, **kwargs)
        config = MeanPoolingConfig(
            encoder=copy.deepcopy(encoder.config),
            classifier_dropout=classifier_dropout,
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
        )
        model = cls(config, encoder=encoder)
        model.config.name_or_path = str(encoder_path)
        return model

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if module in self.encoder.modules():
            self.encoder._init_weights(module)

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    @functools.cached_property
    def _encoder_inputs(self) -> set[str]:
        return set(inspect.signature(self.encoder.forward).parameters)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Logits (batch, num_labels); with `labels`, the loss; with `output_hidden_states`, the encoder's states."""
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
        }
        # Pass only what this encoder takes (MPNet has no token_type_ids), and only what was given.
        inputs = {k: v for k, v in inputs.items() if v is not None and k in self._encoder_inputs}
        if output_attentions:
            inputs["output_attentions"] = True
        out = self.encoder(**inputs, output_hidden_states=bool(output_hidden_states), return_dict=True, **kwargs)
        pooled = mean_pool(out.last_hidden_state, attention_mask)  # (batch, H)
        logits = self.classifier(self.dropout(pooled))  # (batch, num_labels)
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = nn.functional.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        result = SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=out.hidden_states if output_hidden_states else None,
            attentions=getattr(out, "attentions", None) if output_attentions else None,
        )
        return result if return_dict is not False else result.to_tuple()


def lora_target_modules(model: nn.Module) -> list[str]:
    """Names of the attention projections to adapt with LoRA (query/value), found in the model's Linear modules."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    for pair in (("query", "value"), ("q", "v"), ("q_proj", "v_proj"), ("q_lin", "v_lin")):
        if set(pair) <= names:
            return list(pair)
    raise ValueError(f"No query/value projections found among the model's Linear layers {sorted(names)}.")


def register() -> None:
    """Register the config and model with AutoConfig and AutoModelForSequenceClassification (idempotent)."""
    AutoConfig.register(MODEL_TYPE, MeanPoolingConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(MeanPoolingConfig, MeanPoolingForSequenceClassification, exist_ok=True)
