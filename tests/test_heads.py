"""The mean-pooling head: pooling identity, fresh heads on pretrained encoders, save/load through the Auto classes."""

import subprocess
import sys

import pytest
import torch

from cod.modeling.heads import (
    MeanPoolingConfig,
    MeanPoolingForSequenceClassification,
    lora_target_modules,
    mean_pool,
    register,
)

register()  # the Auto classes below load saved mean-pooling models


def test_mean_pool_ignores_padding():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2); the last token is padding
    pooled = mean_pool(states, torch.tensor([[1, 1, 0]]))
    assert torch.allclose(pooled, torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(mean_pool(states, None), states.mean(dim=1))


@pytest.fixture(scope="module")
def mean_model(tiny_classifier):
    torch.manual_seed(0)
    return MeanPoolingForSequenceClassification.from_encoder(str(tiny_classifier), ["neg", "pos", "mixed"]).eval()


def test_from_encoder_keeps_pretrained_weights_and_adds_fresh_head(tiny_classifier, mean_model):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_classifier)
    reference = encoder.state_dict()
    for name, tensor in mean_model.encoder.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert mean_model.classifier.weight.shape == (3, 32)
    assert mean_model.config.id2label == {0: "neg", 1: "pos", 2: "mixed"}
    assert mean_model.config.hidden_size == 32 and mean_model.config.num_hidden_layers == 2


def test_forward_like_an_hf_classifier(tiny_classifier, mean_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    enc = tok(["a good film", "bad"], padding=True, return_tensors="pt")
    out = mean_model(**enc, labels=torch.tensor([1, 0]), output_hidden_states=True)
    assert out.logits.shape == (2, 3)
    assert out.loss.ndim == 0 and out.loss > 0
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (2, enc["input_ids"].shape[1], 32)
    assert mean_model(**enc).hidden_states is None
    # Padding does not change a sentence's logits.
    alone = mean_model(**tok(["bad"], return_tensors="pt")).logits
    assert torch.allclose(alone, out.logits[1:], atol=1e-5)
    out.loss.backward()
    assert mean_model.encoder.embeddings.word_embeddings.weight.grad is not None
    mean_model.zero_grad()


def test_save_and_load_with_auto_classes(tmp_path, tiny_classifier, mean_model):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    mean_model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MeanPoolingConfig)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MeanPoolingForSequenceClassification)
    assert loaded.config.id2label == {0: "neg", 1: "pos", 2: "mixed"}
    enc = tok(["not a good film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(loaded(**enc).logits, mean_model(**enc).logits, atol=1e-5)
    bf16 = AutoModelForSequenceClassification.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert bf16.classifier.weight.dtype == torch.bfloat16 and bf16.encoder.dtype == torch.bfloat16


def test_import_cod_is_light_and_registration_is_an_explicit_call(tmp_path, tiny_classifier, mean_model):
    mean_model.save_pretrained(tmp_path)
    code = (
        "import sys, cod, cod.config, cod.io, cod.cli\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'import cod must stay light'\n"
        "assert not [f for f in sys.meta_path if type(f).__module__.startswith('cod')], 'no import hook'\n"
        "from transformers import AutoModelForSequenceClassification as A\n"
        "from cod.modeling.heads import register\n"
        f"try:\n    A.from_pretrained({str(tmp_path)!r}); print('loaded without register')\n"
        "except (ValueError, KeyError):\n    print('unknown before register')\n"
        f"register(); register()\nprint(type(A.from_pretrained({str(tmp_path)!r})).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["unknown before register", "MeanPoolingForSequenceClassification"]


def test_lora_finds_the_encoder_projections(mean_model):
    from peft import LoraConfig, TaskType, get_peft_model

    targets = lora_target_modules(mean_model)
    assert targets == ["query", "value"]
    peft_model = get_peft_model(
        MeanPoolingForSequenceClassification(mean_model.config),
        LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, target_modules=targets),
    )
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n and "query" in n for n in trainable)
    assert any("classifier" in n for n in trainable)
    assert not any("word_embeddings" in n for n in trainable)
    out = peft_model(input_ids=torch.tensor([[2, 7, 8, 3]]), attention_mask=torch.ones(1, 4, dtype=torch.long))
    assert out.logits.shape == (1, 3)
