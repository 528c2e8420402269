"""cod.modeling.inference: the one batched, length-sorted inference path and the one softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_softmax_rows_and_vectors():
    from cod.modeling.inference import softmax

    logits = np.array([[0.0, np.log(3.0)], [1000.0, 0.0]])  # the second row would overflow a naive exp
    assert softmax(logits) == pytest.approx(np.array([[0.25, 0.75], [1.0, 0.0]]))
    assert softmax(np.array([0.0, np.log(3.0)])) == pytest.approx([0.25, 0.75])


def test_batches_cover_every_text_once_sorted_by_length_and_restore_train_mode(tiny_classifier):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.inference import length_sorted_batches, predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).train()
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier)
    texts = ["the film was very very very good .", "bad", "a dull plot", "it is fun", "the acting was awful ."]
    seen = []
    for idx, out, enc in length_sorted_batches(model, tokenizer, texts, 32, 2):
        assert not model.training and not out.logits.requires_grad  # eval mode, no gradients inside
        assert out.logits.shape == (len(idx), 2) and enc["input_ids"].shape[0] == len(idx)
        seen += idx
    assert sorted(seen) == list(range(5)) and [len(texts[i]) for i in seen] == sorted(len(t) for t in texts)
    assert model.training  # restored
    batched = predict_logits(model, tokenizer, texts, 32, 2)
    with torch.inference_mode():  # one text at a time, no padding: the same logits in input order
        model.eval()
        single = np.stack([model(**tokenizer(t, return_tensors="pt")).logits[0].numpy() for t in texts])
    assert batched == pytest.approx(single, abs=1e-5)
