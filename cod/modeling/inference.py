"""Batched inference, one way for every model: texts sorted by length (a batch pads to similar lengths, a large saving
on CPU), no gradients, eval mode (restored after). The teacher, the student scorer, validation during training, LWD
targets and the demo recipe all run through `length_sorted_batches`; `softmax` turns their logits into probabilities.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["length_sorted_batches", "length_sorted_encodings", "predict_logits", "softmax", "tokenize"]

# A fast tokenizer keeps its padding and truncation settings in its Rust object and changes them per call, so two
# threads calling one tokenizer (the proposer's parallel searches) could encode with each other's settings or fail
# ("Already borrowed"); calls are short, so all go one at a time.
_TOKENIZER_LOCK = threading.Lock()


def tokenize(tokenizer, texts, **kwargs):
    """`tokenizer(texts, **kwargs)`, one call at a time across threads (see `_TOKENIZER_LOCK`)."""
    with _TOKENIZER_LOCK:
        return tokenizer(texts, **kwargs)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis: (num_labels,) or (n, num_labels) logits -> probabilities of the same shape."""
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)  # shift by the max: no overflow
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def length_sorted_encodings(
    tokenizer, texts: Sequence[str], max_length: int, batch_size: int
) -> Iterator[tuple[list[int], Any]]:
    """`texts` tokenized in batches of similar length (less padding); yields (indices into `texts`, encoding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield (
            idx,
            tokenize(
                tokenizer,
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ),
        )


def length_sorted_batches(
    model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int, **forward: Any
) -> Iterator[tuple[list[int], Any, Any]]:
    """Run `model` over `texts` in batches of similar length; yields (indices into `texts`, model output, encoding).

    `forward` goes to the model call (e.g. `output_hidden_states=True`). No gradients; eval mode, restored after."""
    texts = list(texts)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for idx, enc in length_sorted_encodings(tokenizer, texts, max_length, batch_size):
            enc = enc.to(device)
            with torch.inference_mode():
                out = model(**enc, **forward)
            yield idx, out, enc
    finally:
        model.train(was_training)


def predict_logits(model, tokenizer, texts: Sequence[str], max_length: int = 128, batch_size: int = 32) -> np.ndarray:
    """Logits of a sequence classifier, (n, num_labels) float32, in the order of `texts`."""
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for idx, output, _ in length_sorted_batches(model, tokenizer, texts, max_length, batch_size):
        out[idx] = output.logits.float().cpu().numpy()
    return out
