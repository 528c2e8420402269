"""The offline proposer's fluency screen: which candidate edits of one text fit their slot, under a small causal LM.

`SlotFit` wraps `fluency.EditFluency` (one LM pass over the original, then cached-prefix estimates of each edit) for
the search in `lexical.py`: lexicon words that fit a slot given its left context (free, from the original's pass),
a shortlist per position by that fit (what the teacher sees), and the dearer window estimate, which the search asks
only of the edits the teacher flips. Given the task's label names and the target class, the LM reads the original
after the target's class prefix, so the search estimates the score it is judged by (class-slor; see `SlotFit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cod.counterfactuals.edits import Op, spans
from cod.counterfactuals.fluency import FLUENT_AT, NO_LESS_FLUENT, EditFluency, FluencyScorer, class_prefixes

SLOT_SHORTLIST = 2  # the teacher sees this many more candidates per position than `LexicalConfig.substitutes`
SLOT_PRESHORTLIST = 2  # times as many (by the left context's fit) are re-ranked with their right context first


class SlotFit:
    """Estimated fluency of candidate edits of one text (`fluency.EditFluency`), cached; all 0 without an LM.

    With the task's `label_names` and the edit's `target` class the estimates are of class-slor, the score the
    counterfactual is stored and judged by: the LM reads the original after the target's `CLASS_PREFIX`, so each
    estimate is the edit's SLOR after that prefix (a lower bound of its best over the classes) minus the original's
    class-slor (its best prefix, scored exactly), and an edit is fluent enough at `FLUENT_AT["class-slor"]`. Without
    names (or past `CLASS_PREFIXES_AT_MOST` classes) they are plain SLOR changes, fluent enough at 0."""

    def __init__(
        self,
        scorer: FluencyScorer | None,
        words: Sequence[str],
        label_names: Sequence[str] = (),
        target: int | None = None,
        text: str | None = None,
    ):
        prefixes = class_prefixes(label_names) if target is not None else []
        prefix = prefixes[target] if prefixes else ""
        self.windows = EditFluency(scorer, words, prefix) if scorer is not None else None
        self.known: dict[tuple[Op, ...], tuple[float, float]] = {}  # ops -> (fluency, nats), in `RIGHT`'s window
        self.known_whole: dict[tuple[Op, ...], tuple[float, float]] = {}  # likewise, read to the text's end
        self.fluent_at = FLUENT_AT["class-slor"] if prefixes else NO_LESS_FLUENT
        self.shift = 0.0  # the original's SLOR after the target's prefix minus its class-slor (<= 0)
        if prefixes and scorer is not None:
            text = " ".join(words) if text is None else text
            own = scorer.scores_after([text], prefix)[0]
            best = scorer.scores([text], "class-slor", label_names)[0]
            self.shift = float(own - best) if np.isfinite(own - best) else 0.0

    def estimate(self, candidates: Sequence[tuple[Op, ...]], whole: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(estimated fluency, log-likelihood change in nats) of each candidate (a tuple of ops), each (n,): read
        `EditFluency.RIGHT` words past the edit, or with `whole` to the text's end (dearer, for the few flips the
        search chooses among: a word can break a clause further on, "rare illnesses that come by once in a while")."""
        if self.windows is None:
            return np.zeros(len(candidates)), np.zeros(len(candidates))
        known = self.known_whole if whole else self.known
        todo = list(dict.fromkeys(c for c in candidates if c not in known))
        if todo:
            right = len(self.windows.words) if whole else None
            fluency, nats = self.windows.estimate([spans(self.windows.words, c) for c in todo], right)
            known.update(zip(todo, zip((fluency + self.shift).tolist(), nats.tolist())))
        pairs = np.array([known[c] for c in candidates], dtype=float).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    @property
    def estimated(self) -> int:
        """How many edits the LM has estimated (in a window or whole)."""
        return len(self.known) + len(self.known_whole)

    def shortlist(self, candidates: list[tuple[Op, ...]], per_position: int) -> list[tuple[Op, ...]]:
        """The `per_position` candidates at each position whose first new word fits its slot best
        (`EditFluency.slot_scores`: free, from the original's one LM pass), in their order; all without an LM."""
        if self.windows is None or not candidates:
            return list(candidates)
        slot = self.windows.slot_scores([spans(self.windows.words, c) for c in candidates])
        return [candidates[k] for k in self._top_per_position(candidates, slot, per_position)]

    def rerank(self, candidates: list[tuple[Op, ...]], per_position: int, positions) -> list[tuple[Op, ...]]:
        """The `per_position` candidates at each of `positions` that read best with the words after them too (the
        window `estimate`, in one LM batch: "a thin luck" loses to "a bad luck" though "a thin" fits as well as
        "a bad"); at other positions the first `per_position` as given; in their order. Without an LM, all as given."""
        if self.windows is None or not candidates:
            return list(candidates)
        near = [c for c in candidates if c[0].pos in positions]
        fluency = dict(zip(near, self.estimate(near)[0])) if near else {}
        score = [fluency.get(c, -k) for k, c in enumerate(candidates)]  # elsewhere: the given order
        return [candidates[k] for k in self._top_per_position(candidates, score, per_position)]

    @staticmethod
    def _top_per_position(candidates, score, per_position: int) -> list[int]:
        """Indices of the `per_position` highest-`score` candidates at each position, in order."""
        by_pos: dict[int, list[tuple[float, int]]] = {}
        for k in range(len(candidates)):
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
