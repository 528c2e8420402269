"""Decoder students: a causal LM (Llama, Qwen2) with a classification head, distilled from an encoder teacher, fully or
with LoRA, saved so that AutoModelForSequenceClassification loads it. Tiny random models built in code, offline."""

from __future__ import annotations

import pytest
import torch

from cod.config import DistillConfig
from cod.distill.trainer import distill
from cod.errors import DistillError
from cod.modeling.loading import is_causal_lm, load_student
from tests.test_distill import _teacher, _texts
from tests.tiny import make_tiny_decoder

TEXTS = ["good", "the film was very good and fun .", "this movie was bad", "the plot is boring , dull and a mess ."]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def decoder(request, tmp_path_factory):
    return make_tiny_decoder(tmp_path_factory.mktemp(f"tiny-{request.param}"), family=request.param)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_tiny_decoder(tmp_path_factory.mktemp("tiny-llama"), family="llama")


def _cfg(**kw) -> DistillConfig:
    base = dict(k=8, epochs=2, batch_size=4, learning_rate=1e-3, warmup_ratio=0.0, max_length=32, evaluations=2)
    return DistillConfig(**{**base, **kw})


def _logits(model, tokenizer, texts, side="right"):
    tokenizer.padding_side = side
    with torch.inference_mode():
        return model.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits


@pytest.mark.parametrize("head", ["cls", "mean"])
def test_a_causal_lm_student_pools_each_text_the_same_alone_or_padded(decoder, head):
    from transformers import AutoConfig

    assert is_causal_lm(AutoConfig.from_pretrained(decoder))
    model, tokenizer = load_student(str(decoder), ["negative", "positive"], head=head)
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.cod_head == head and model.config.id2label == {0: "negative", 1: "positive"}
    alone = torch.cat([_logits(model, tokenizer, [t]) for t in TEXTS])  # (4, 2), no padding at all
    for side in ("right", "left"):  # last-token and mean pooling both find the real tokens, whichever side pads
        assert torch.allclose(_logits(model, tokenizer, TEXTS, side), alone, atol=1e-5), side


def test_a_llama_checkpoint_without_a_pad_token_gets_its_eos(llama):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(llama).pad_token is None  # as Llama checkpoints ship
    model, tokenizer = load_student(str(llama), ["negative", "positive"])
    assert (
        tokenizer.pad_token == tokenizer.eos_token == "</s>"
        and type(model).__name__ == "LlamaForSequenceClassification"
    )


@pytest.mark.parametrize(("lora", "head"), [(False, "cls"), (True, "mean")])
def test_kd_into_a_decoder_student_saves_a_classifier_the_auto_class_loads(
    decoder, lora, head, tiny_classifier, tmp_path
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train, validation = _texts(8, 0), _texts(8, 1)
    res = distill(
        _cfg(lora=lora, lora_r=2, head=head),
        _teacher(tiny_classifier),
        str(decoder),
        train,
        None,
        validation,
        out_dir=tmp_path,
    )
    assert all(e.losses["kd"] >= 0 for e in res.history if e.kind == "step")
    if lora:  # adapters on q_proj / v_proj, merged on export
        assert res.metrics["trainable_params"] < sum(p.numel() for p in res.model.parameters()) / 2
    assert not any("lora" in k for k in res.model.state_dict())
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert type(reloaded).__name__.endswith("ForSequenceClassification") and tokenizer.pad_token is not None
    assert res.metrics["head"] == head and reloaded.config.pad_token_id == tokenizer.pad_token_id
    assert reloaded.config.id2label == {0: "negative", 1: "positive"}
    assert torch.allclose(_logits(reloaded, tokenizer, TEXTS), _logits(res.model, res.tokenizer, TEXTS), atol=1e-5)


def test_lwd_from_an_encoder_teacher_into_a_decoder_student_is_pooled_and_token_level_is_refused(
    llama, tiny_classifier
):
    teacher, train, validation = _teacher(tiny_classifier), _texts(8, 0), _texts(4, 1)
    res = distill(_cfg(method="lwd", epochs=1), teacher, str(llama), train, None, validation)
    # Different tokenizers cut texts differently, so layers meet through mean-pooled states (2 layers each).
    assert res.metrics["lwd_mode"] == "pooled" and res.metrics["lwd_teacher_layers"] == [1, 2]
    assert all(e.losses["lwd"] > 0 for e in res.history if e.kind == "step")
    with pytest.raises(DistillError, match="lwd_mode 'token' needs teacher and student to share a tokenizer"):
        distill(_cfg(method="lwd", lwd_mode="token", epochs=1), teacher, str(llama), train, None, validation)
