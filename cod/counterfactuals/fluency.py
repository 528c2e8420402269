"""Fluency: how naturally a counterfactual reads next to its original, under a small causal LM, offline.

A text's score is its mean per-token log-likelihood (nats) under the LM, every word written with a leading space
after the LM's BOS token; a counterfactual's fluency is its score minus its original's. So 0 means "as fluent as the
original", and "Does not an impressive job" (-0.3) or "gets entertained down" (-2.1) fall below it. Means (not sums)
keep an inserted "not" from costing a token's worth of log-likelihood by itself. The default LM is the embedded
SmolLM2-135M-Instruct (`demo-llm`), which loads in about a second once converted.

Words are whitespace-separated (as in `edits.py`) and tokenised one by one, so a text's token ids are the
concatenation of its words' ids: a candidate edit re-tokenises only the words it changes, and a window of words is
a slice of ids. (Byte-level BPE pre-tokenises at spaces, so this equals tokenising the joined text.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from cod.counterfactuals.base import Counterfactual

DEFAULT_FLUENCY_MODEL = "demo-llm"
NO_LESS_FLUENT = 0.0  # a counterfactual with fluency >= this reads no worse than its original


class FluencyScorer:
    """Mean per-token log-likelihood of word sequences under a causal LM, batched and cached per text."""

    def __init__(self, model, tokenizer, name: str = "", batch_size: int = 32, max_tokens: int = 128):
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "causal-lm")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self._start = int(start if start is not None else 0)
        self._word_ids: dict[str, list[int]] = {}
        self._totals: dict[str, tuple[float, float]] = {}  # text -> (summed log-likelihood, tokens)
        self._torch = torch

    def __repr__(self) -> str:
        return f"FluencyScorer(name={self.name!r})"

    def word_ids(self, words: Sequence[str]) -> list[list[int]]:
        """Token ids of each word written with a leading space (cached per word)."""
        new = [w for w in dict.fromkeys(words) if w not in self._word_ids]
        if new:
            for w, ids in zip(new, self.tokenizer([" " + w for w in new], add_special_tokens=False)["input_ids"]):
                self._word_ids[w] = list(ids)
        return [self._word_ids[w] for w in words]

    def ids(self, words: Sequence[str]) -> list[int]:
        """A word sequence's token ids (without the start token)."""
        return [i for ids in self.word_ids(words) for i in ids]

    def logprob_sums(self, sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(summed log-likelihood, token count) of each id sequence after the start token, each (n,); 0 when empty."""
        torch = self._torch
        sums, counts = np.zeros(len(sequences)), np.zeros(len(sequences))
        todo = sorted((i for i, s in enumerate(sequences) if s), key=lambda i: len(sequences[i]))  # less padding
        for b in range(0, len(todo), self.batch_size):
            batch = todo[b : b + self.batch_size]
            rows = [[self._start, *list(sequences[i])[: self.max_tokens]] for i in batch]
            width = max(map(len, rows))
            ids = torch.tensor([r + [self._start] * (width - len(r)) for r in rows])  # (batch, width)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (batch, width-1, V)
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]  # (batch, width-1)
            valid = mask[:, 1:].float()
            sums[batch] = (logp * valid).sum(1).numpy()
            counts[batch] = valid.sum(1).numpy()
        return sums, counts

    def mean_logprobs(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean log-likelihood per token of each id sequence after the start token, (n,); NaN for an empty one."""
        sums, counts = self.logprob_sums(sequences)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def totals(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(summed log-likelihood, token count) of each text, each (n,), cached per text."""
        new = [t for t in dict.fromkeys(texts) if t not in self._totals]
        if new:
            sums, counts = self.logprob_sums([self.ids(t.split()) for t in new])
            self._totals.update(zip(new, zip(sums.tolist(), counts.tolist())))
        pairs = np.array([self._totals[t] for t in texts], dtype=float).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's mean per-token log-likelihood, (n,); NaN for an empty text."""
        sums, counts = self.totals(texts)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def fluency(self, originals: Sequence[str], counterfactuals: Sequence[str]) -> np.ndarray:
        """Score of each counterfactual minus its original's, (n,): >= 0 reads no worse; NaN for an empty text."""
        both = self.scores(list(originals) + list(counterfactuals))
        return both[len(originals) :] - both[: len(originals)]


Span = tuple[int, int, tuple[str, ...]]  # words[start:end] of the original become these words


class EditFluency:
    """Fluency of many candidate edits of one text, estimated in one LM batch from windows of words around each edit.

    An edit changes the log-likelihood only from its first word on; a window of `LEFT` words before it to `RIGHT`
    words after it holds most of that change (d, over dt more tokens), so the whole text's mean becomes about
    (S + d) / (T + dt) for the original's sum S over T tokens. The estimate costs a dozen tokens per edit instead of
    the whole text; the final counterfactual is scored exactly (`FluencyScorer.fluency`).
    """

    LEFT, RIGHT = 5, 3

    def __init__(self, scorer: FluencyScorer, words: Sequence[str]):
        self.scorer, self.words = scorer, list(words)
        sums, counts = scorer.totals([" ".join(self.words)])
        self.total, self.count = float(sums[0]), float(counts[0])

    def estimate(self, edits: Sequence[Sequence[Span]]) -> tuple[np.ndarray, np.ndarray]:
        """(estimated fluency as `FluencyScorer.fluency`, log-likelihood change in nats) of each edit, each (n,);
        an edit is a list of spans of the original's words. The nats do not depend on the text's length."""
        if not edits:
            return np.zeros(0), np.zeros(0)
        rows: dict[tuple[int, ...], int] = {}  # distinct windows -> row

        def row(words: Sequence[str]) -> int:
            return rows.setdefault(tuple(self.scorer.ids(words)), len(rows))

        pairs = []
        for spans in edits:
            spans = sorted(spans)
            if not spans:  # no change at all
                pairs.append((row(self.words[:1]), row(self.words[:1])))
                continue
            lo = max(0, spans[0][0] - self.LEFT)
            hi = min(len(self.words), max(end for _, end, _ in spans) + self.RIGHT)
            new, at = list(self.words[lo : spans[0][0]]), spans[0][0]
            for start, end, words in spans:
                new += self.words[at:start] + list(words)
                at = end
            new += self.words[at:hi]
            pairs.append((row(self.words[lo:hi]), row(new)))
        sums, counts = self.scorer.logprob_sums([list(ids) for ids in rows])
        before, after = np.array(pairs).T
        d, dt = sums[after] - sums[before], counts[after] - counts[before]
        if self.count == 0:
            return np.full(len(edits), np.nan), d
        return (self.total + d) / np.maximum(self.count + dt, 1) - self.total / self.count, d


@functools.lru_cache(maxsize=2)
def load_fluency_scorer(model: str = DEFAULT_FLUENCY_MODEL) -> FluencyScorer:
    """The scorer for a causal LM by name ('demo-llm': the embedded LLM), Hub id or local folder; one per process."""
    from cod.counterfactuals.local_llm import load_causal_lm

    lm, tokenizer = load_causal_lm(model)  # the same weights the local LLM proposer uses
    return FluencyScorer(lm, tokenizer, name=model)


def add_fluency(cfs: Sequence[Counterfactual], scorer: FluencyScorer | None = None) -> list[Counterfactual]:
    """Set `fluency` on every counterfactual with text that has none yet (one batch); returns them."""
    todo = [cf for cf in cfs if cf.counterfactual and cf.fluency is None]
    if todo:
        scorer = scorer or load_fluency_scorer()
        for cf, f in zip(todo, scorer.fluency([cf.text for cf in todo], [cf.counterfactual for cf in todo])):
            cf.fluency = None if math.isnan(f) else round(float(f), 4)
    return list(cfs)


def fluent_share(cfs: Sequence[Counterfactual], at_least: float = NO_LESS_FLUENT) -> float:
    """Share of scored counterfactuals whose fluency is at least `at_least` (NaN when none is scored)."""
    scored = [cf.fluency for cf in cfs if cf.fluency is not None]
    return sum(f >= at_least for f in scored) / len(scored) if scored else float("nan")
