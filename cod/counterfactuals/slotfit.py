"""The offline proposer's fluency screen: which candidate edits of one text fit their slot, under a small causal LM.

`SlotFit` wraps `fluency.EditFluency` (one LM pass over the original, then cached-prefix estimates of each edit) for
the search in `lexical.py`: lexicon words that fit a slot given its left context (free, from the original's pass),
a shortlist per position by that fit, and the dearer window estimate for the shortlist only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cod.counterfactuals.edits import Op, spans
from cod.counterfactuals.fluency import NO_LESS_FLUENT, EditFluency, FluencyScorer

SLOT_SHORTLIST = 1  # the LM's window estimate sees this many more candidates per position than the teacher does


class SlotFit:
    """Estimated fluency of candidate edits of one text (`fluency.EditFluency`), cached; all 0 without an LM."""

    def __init__(self, scorer: FluencyScorer | None, words: Sequence[str]):
        self.windows = EditFluency(scorer, words) if scorer is not None else None
        self.known: dict[tuple[Op, ...], tuple[float, float]] = {}  # ops -> (fluency, nats)

    def estimate(self, candidates: Sequence[tuple[Op, ...]]) -> tuple[np.ndarray, np.ndarray]:
        """(estimated fluency, log-likelihood change in nats) of each candidate (a tuple of ops), each (n,)."""
        if self.windows is None:
            return np.zeros(len(candidates)), np.zeros(len(candidates))
        todo = list(dict.fromkeys(c for c in candidates if c not in self.known))
        if todo:
            fluency, nats = self.windows.estimate([spans(self.windows.words, c) for c in todo])
            self.known.update(zip(todo, zip(fluency.tolist(), nats.tolist())))
        pairs = np.array([self.known[c] for c in candidates], dtype=float).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def keep(self, candidates: list[tuple[Op, ...]], floor: float, per_position: int) -> list[tuple[Op, ...]]:
        """The `per_position` most fluent candidates at each position among those losing less than `floor` nats of
        SLOR's numerator (`floor` < 0), in their order. Only the `per_position + SLOT_SHORTLIST` whose first new
        token fits its slot best (`EditFluency.slot_scores`, free) get the dearer window estimate."""
        if self.windows is None or not candidates:
            return candidates
        slot = self.windows.slot_scores([spans(self.windows.words, c) for c in candidates])
        shortlist = self._top_per_position(candidates, slot, per_position + SLOT_SHORTLIST)
        fluency, nats = self.estimate([candidates[k] for k in shortlist])
        fits = [(k, f) for k, f, n in zip(shortlist, fluency, nats) if n >= floor]
        chosen = self._top_per_position(candidates, dict(fits), per_position, among=[k for k, _ in fits])
        return [candidates[k] for k in chosen]

    def screen(
        self, candidates: list[tuple[Op, ...]], floor: float, per_position: int
    ) -> tuple[list[tuple[Op, ...]], list[tuple[Op, ...]]]:
        """(every shortlisted candidate estimated no less fluent than the original, the rest of `keep`'s choice),
        each in the candidates' order; without an LM, ([], all candidates): the teacher sees the first list first."""
        if self.windows is None or not candidates:
            return [], list(candidates)
        kept = self.keep(candidates, floor, per_position)
        first = [
            c
            for c in candidates
            if c in self.known and self.known[c][0] >= NO_LESS_FLUENT and self.known[c][1] >= floor
        ]
        chosen = set(first)
        return first, [c for c in kept if c not in chosen]

    @staticmethod
    def _top_per_position(candidates, score, per_position: int, among=None) -> list[int]:
        """Indices of the `per_position` highest-`score` candidates at each position (of `among`), in order."""
        by_pos: dict[int, list[tuple[float, int]]] = {}
        for k in range(len(candidates)) if among is None else among:
            by_pos.setdefault(candidates[k][0].pos, []).append((-score[k], k))
        return sorted(k for ranked in by_pos.values() for _, k in sorted(ranked)[:per_position])

    def slot_words(self, i: int, pool: Sequence[str], k: int) -> list[str]:
        """The k one-token words of `pool` that fit in place of word i best, given the words before it
        (`EditFluency.fit_at`; a longer word's first piece says too little about the word)."""
        if self.windows is None or k <= 0:
            return []
        pool = [w for w, ids in zip(pool, self.windows.scorer.word_ids(pool)) if len(ids) == 1]
        scores = self.windows.fit_at(i, pool)  # (len(pool),)
        return [pool[j] for j in np.argsort(-scores)[:k]]
