"""The Teacher: batched, cached by text (forward passes counted), probabilities, mean-pooled embeddings."""

import numpy as np
import pytest
import torch

from cod.modeling.heads import MeanPoolingForSequenceClassification, mean_pool
from cod.modeling.scoring import Teacher

TEXTS = ["a good film", "bad and dull", "not so great", "the plot was a mess", "a good film"]


@pytest.fixture()
def teacher(tiny_classifier):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    return Teacher(model, AutoTokenizer.from_pretrained(tiny_classifier), name="tiny", batch_size=2)


def test_probabilities_and_labels(teacher):
    probs = teacher.predict_proba(TEXTS)
    assert probs.shape == (5, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert teacher.label_names == ["negative", "positive"] and teacher.num_labels == 2
    assert (teacher.predict(TEXTS) == probs.argmax(axis=1)).all()
    assert teacher.predict_proba([]).shape == (0, 2)


def test_each_text_runs_once(teacher):
    teacher.logits(TEXTS)
    assert teacher.forward_passes == 4  # the repeated text runs once
    teacher.predict_proba(TEXTS[:2] + ["a brand new text"])
    assert teacher.forward_passes == 5
    teacher.embed(TEXTS)  # embeddings came with the logits: no new forward
    assert teacher.forward_passes == 5


def test_cached_logits_match_a_fresh_unbatched_forward(teacher):
    batched = teacher.logits(TEXTS)
    with torch.no_grad():
        for text, row in zip(TEXTS, batched):
            single = teacher.model(**teacher.tokenizer([text], return_tensors="pt")).logits[0].numpy()
            assert np.allclose(single, row, atol=1e-5)


def test_embed_is_the_mean_pooled_last_layer(teacher):
    emb = teacher.embed(TEXTS[:3])
    assert emb.shape == (3, 32) and teacher.hidden_size == 32
    enc = teacher.tokenizer(TEXTS[1:2], return_tensors="pt")
    with torch.no_grad():
        last = teacher.model(**enc, output_hidden_states=True).hidden_states[-1]
    assert np.allclose(mean_pool(last, enc["attention_mask"])[0].numpy(), emb[1], atol=1e-5)
    assert teacher.embed([]).shape == (0, 32)


def test_mean_pooling_teacher(tiny_classifier):
    from transformers import AutoTokenizer

    model = MeanPoolingForSequenceClassification.from_encoder(str(tiny_classifier), ["negative", "positive"])
    teacher = Teacher(model, AutoTokenizer.from_pretrained(tiny_classifier))  # BERT tokenizer: has token_type_ids
    probs = teacher.predict_proba(TEXTS)
    assert probs.shape == (5, 2) and teacher.forward_passes == 4
    assert teacher.embed(TEXTS).shape == (5, 32) and teacher.forward_passes == 4
    assert not model.training  # the teacher is put in eval mode: no dropout noise in its scores
