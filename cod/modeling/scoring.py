"""The teacher: `predict_proba(texts) -> (n, num_labels)`, batched, without grad, cached by text.

Everything that asks the teacher (proposers, distillation, the UI) goes through one `Teacher`, so a text is
never scored twice in a process; `forward_passes` counts the texts that actually ran through the model.
One forward gives both the logits and the mean-pooled last hidden state (`embed`), so both are cached together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

from cod.errors import ModelError
from cod.modeling.heads import mean_pool


class Teacher:
    """A sequence classifier wrapped for scoring: cached logits per text, label names from its config."""

    def __init__(self, model, tokenizer, name: str = "", max_length: int = 128, batch_size: int = 32):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or "teacher"
        self.max_length = max_length
        self.batch_size = batch_size
        config = model.config
        self.label_names = [str(config.id2label[i]) for i in range(config.num_labels)]
        self._logits: dict[str, np.ndarray] = {}  # text -> (num_labels,)
        self._embeddings: dict[str, np.ndarray] = {}  # text -> (hidden,), mean-pooled last layer
        self._lock = threading.Lock()  # one forward at a time: the UI and workers share a teacher
        self.forward_passes = 0  # texts run through the model (cache misses)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher logits, (n, num_labels); only texts never seen before run through the model."""
        return self._cached(texts, self._logits, lambda: self.num_labels)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled last hidden states, (n, hidden); cached with the logits (one forward serves both)."""
        return self._cached(texts, self._embeddings, lambda: self.hidden_size)

    def _cached(self, texts: Sequence[str], cache: dict[str, np.ndarray], width: Callable[[], int]) -> np.ndarray:
        """Rows of `cache` for `texts`, (n, width), running only the texts it lacks through the model.

        `width` is called only for an empty request: some configs have no `hidden_size` to read up front."""
        texts = list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in cache))
            if missing:
                self._forward(missing)
            if not texts:
                return np.zeros((0, width()), dtype=np.float32)
            if any(t not in cache for t in missing):  # only embeddings can be absent after a forward
                raise ModelError(f"The teacher {self.name!r} does not return hidden states, so it cannot embed texts.")
            return np.stack([cache[t] for t in texts])

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.get_text_config().hidden_size)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher probabilities, (n, num_labels)."""
        logits = self.logits(texts)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Teacher's predicted class indices, (n,)."""
        return self.logits(texts).argmax(axis=1)

    @torch.inference_mode()
    def _forward(self, texts: list[str]) -> None:
        # Sort by length so each batch pads to similar lengths (a large saving on CPU).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = [texts[i] for i in order[start : start + self.batch_size]]
            enc = self.tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            out = self.model(**enc, output_hidden_states=True)
            logits = out.logits.float().cpu().numpy()  # (batch, num_labels)
            states = getattr(out, "hidden_states", None)
            pooled = None
            if states:  # mean over real tokens of the last layer: (batch, seq, H) -> (batch, H)
                pooled = mean_pool(states[-1], enc.get("attention_mask")).float().cpu().numpy()
            for j, text in enumerate(batch):
                self._logits[text] = logits[j]
                if pooled is not None:
                    self._embeddings[text] = pooled[j]
            self.forward_passes += len(batch)
