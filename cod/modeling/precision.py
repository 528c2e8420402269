"""The precision of live previews (a person typing), kept apart from the teacher's canonical answers.

Everything stored (a counterfactual's label, the probabilities saved with pairs, distillation targets, cached teacher
scores) comes from the teacher as loaded, in float32 on CPU. Live previews may run a bfloat16 copy of the same
weights instead: on a CPU with AMX or AVX512-BF16 its matrix products are several times cheaper. `PreviewScorer` keeps
the two apart: a text the teacher scored before is answered canonically; a new text runs through the bfloat16 copy
and is cached separately (never in the teacher's own cache); a preview whose top two probabilities are within
`recheck_margin` of each other is scored again canonically, so a preview's label never differs from the label that
would be stored while the two precisions differ by less than half that margin (measured on the demo test split by
`bench/bench_live_precision.py`).

COD_LIVE_PRECISION: `auto` (default: bfloat16 for a float32 classifier on a CPU with AMX or AVX512-BF16, else the
teacher as loaded), `teacher` (previews computed exactly as stored answers), `bfloat16` (on any CPU; slower than
float32 without hardware support). COD_LIVE_RECHECK_MARGIN: default 0.1.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import warnings
from collections.abc import Sequence

import numpy as np

from cod.errors import ConfigError
from cod.modeling.inference import length_sorted_encodings, softmax

PRECISIONS = ("auto", "teacher", "bfloat16")
CANONICAL = "canonical"  # the teacher as loaded, which gives every stored answer
# Texts the traced graph is checked on: two lengths, batch sizes 1 and 3 (neither is the size it was traced at).
PROBES = ("a good film", "not bad at all , and the cast is fun", "a very long , dull and tedious story with no plot")


def live_precision_setting() -> str:
    """COD_LIVE_PRECISION, checked: one of `PRECISIONS` (default auto)."""
    value = os.environ.get("COD_LIVE_PRECISION", "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ConfigError(
            f"COD_LIVE_PRECISION={value!r} is not one of {', '.join(PRECISIONS)}: unset it (auto) or pick one."
        )
    return value


def recheck_margin() -> float:
    """COD_LIVE_RECHECK_MARGIN, checked: previews whose top two probabilities are closer are scored canonically."""
    raw = os.environ.get("COD_LIVE_RECHECK_MARGIN", "0.1")
    try:
        margin = float(raw)
    except ValueError:
        margin = -1.0
    if not 0.0 <= margin <= 1.0:
        raise ConfigError(f"COD_LIVE_RECHECK_MARGIN={raw!r} must be a number from 0 to 1 (default 0.1).")
    return margin


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX tiles or AVX512-BF16), which oneDNN uses."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return torch.backends.mkldnn.is_available() and any(getattr(cpu, name, lambda: False)() for name in checks)


def live_precision(teacher) -> str:
    """The precision `teacher`'s live previews run at: its own (`CANONICAL`) unless a bfloat16 copy applies."""
    return "bfloat16" if bfloat16_applies(teacher, live_precision_setting()) else CANONICAL


def bfloat16_applies(teacher, setting: str) -> bool:
    """Whether a bfloat16 copy may answer for `teacher` under `setting` (one of `PRECISIONS`): a float32 classifier
    on CPU, and for `auto` a CPU with fast bfloat16."""
    import torch

    model = getattr(teacher, "model", None)
    if setting == "teacher" or getattr(teacher, "kind", "") != "classifier" or model is None:
        return False
    weights = next(model.parameters())
    if weights.dtype != torch.float32 or weights.device.type != "cpu":  # a GPU or a half-precision load: as is
        return False
    return setting != "auto" or cpu_has_fast_bfloat16()


def bfloat16_copy(model):
    """A bfloat16 copy of `model` in eval mode (the original is untouched: it stays the canonical teacher)."""
    import torch

    return copy.deepcopy(model).to(torch.bfloat16).eval()


def traced_logits(model, tokenizer, probes: Sequence[str]):
    """`model`'s logits as one frozen TorchScript graph, `(input_ids, attention_mask) -> (n, num_labels)`, or None
    when tracing fails or the graph's logits differ from the model's on `probes` at another batch size and length.

    One graph call runs without Python between operations: faster, and it leaves the interpreter to the web
    server's threads while it runs (an eager forward holds it between each of its hundreds of small operations)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def encode(texts):
        return tokenizer(list(texts), padding=True, return_tensors="pt")

    first = encode(probes[:2])
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on branches that are constant for an encoder
            example = (first["input_ids"], first["attention_mask"])
            graph = torch.jit.freeze(torch.jit.trace(Logits().eval(), example, check_trace=False, strict=False))
            for batch in (probes[:1], probes):
                enc = encode(batch)
                expected = model(**enc).logits  # (n, num_labels), with every input the tokenizer gives
                if not torch.allclose(graph(enc["input_ids"], enc["attention_mask"]), expected, atol=1e-3):
                    return None
    except Exception:  # noqa: BLE001 - any model the tracer cannot follow runs eagerly instead
        return None
    return graph


class PreviewScorer:
    """Live previews of a classifier `Teacher` through a bfloat16 copy of its model; see the module docstring."""

    precision = "bfloat16"

    def __init__(self, teacher, margin: float | None = None) -> None:
        from cod.modeling.scoring import LRU, cache_limit

        self.teacher = teacher
        self.label_names = teacher.label_names
        self.margin = recheck_margin() if margin is None else margin
        self.model = bfloat16_copy(teacher.model)
        self.graph = traced_logits(self.model, teacher.tokenizer, PROBES)  # None: the copy runs eagerly
        self.rechecked = 0  # previews too close to call, scored canonically (for benches and tests)
        self._lock = threading.Lock()
        self._logits: LRU = LRU(cache_limit())  # text -> (num_labels,) bfloat16-path logits, never stored

    def cached_proba(self, text: str) -> np.ndarray | None:
        """A text's probabilities when known (canonical first, then an earlier preview), (num_labels,); else None."""
        probs = self.teacher.cached_proba(text)
        if probs is not None:
            return probs
        with self._lock:
            row = self._logits.get(text)
        return None if row is None else softmax(row)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Preview probabilities, (n, num_labels): canonical where known or too close to call, else bfloat16."""
        texts = list(texts)
        known = {t: p for t in dict.fromkeys(texts) if (p := self.cached_proba(t)) is not None}
        fresh = [t for t in dict.fromkeys(texts) if t not in known]
        if fresh:
            logits = dict(zip(fresh, self._forward(fresh)))  # text -> (num_labels,)
            close = [t for t in fresh if top_two_gap(softmax(logits[t])) < self.margin]
            if close:  # near a tie the two precisions could disagree on the label: answer as would be stored
                self.rechecked += len(close)
                known.update(zip(close, self.teacher.predict_proba(close)))
            with self._lock:  # only previews far from a tie are kept (a near-tie's answer is the teacher's)
                for text in fresh:
                    if text not in known:
                        self._logits[text] = logits[text]
                        known[text] = softmax(logits[text])
        return np.stack([known[t] for t in texts])

    def _forward(self, texts: list[str]) -> np.ndarray:
        """bfloat16 logits of `texts`, (n, num_labels) float32, in batches of similar length, taking turns with the
        teacher's own forwards."""
        import torch

        teacher = self.teacher
        out = np.zeros((len(texts), teacher.num_labels), dtype=np.float32)
        batches = length_sorted_encodings(teacher.tokenizer, texts, teacher.max_length, teacher.batch_size)
        for idx, enc in batches:
            with _lane(teacher), torch.inference_mode():
                if self.graph is not None:
                    logits = self.graph(enc["input_ids"], enc["attention_mask"])
                else:
                    logits = self.model(**enc).logits
            out[idx] = logits.float().numpy()
        return out


def _lane(teacher):
    """Where a preview forward runs: a live one (`urgent`) beside the teacher's own forward when torch runs one thread
    per forward (the other core is free for it; the preview is a separate copy of the weights), else in turn with
    the teacher's forwards (background work waits for live calls; two forwards of several threads each on the same
    cores make every thread wait for the others at each operation)."""
    import torch

    from cod.modeling.scoring import is_urgent

    return contextlib.nullcontext() if is_urgent() and torch.get_num_threads() == 1 else teacher.turn()


def top_two_gap(probs: np.ndarray) -> float:
    """Difference between the two largest probabilities (1.0 for a single label)."""
    top = np.sort(np.asarray(probs))[::-1]
    return float(top[0] - top[1]) if len(top) > 1 else 1.0
