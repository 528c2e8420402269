"""How close a counterfactual stays to its original, and a cheap plausibility signal, for ranking and curation.

- `similarity`: 1 - normalised word-level edit distance (1 = unchanged);
- `char_similarity`: difflib's character ratio (a one-letter change, "is" -> "isn't", scores near 1);
- `embedding_cosine`: cosine of the teacher's mean-pooled embeddings (`teacher.embed`), when it has one;
- `tokenizer_fit`: how well the teacher's tokenizer knows the new words compared with the original's
  (subword pieces per word, original / counterfactual, capped at 1; unknown tokens count 3 pieces each). Rare,
  misspelt or invented words split into many pieces, so a low value flags an edit worth a look. It is a crude
  signal; `fluency` is the language model's view.
- `margin`: the teacher's target probability minus the best other class (> 0: flipped);
- `fluency`: the counterfactual's own score when it has one (`fluency.py`: SLOR change per token under a small
  causal LM, >= 0 reads no worse than the original).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual

if TYPE_CHECKING:  # pragma: no cover
    from cod.modeling.scoring import Teacher


def similarity(text: str, counterfactual: str) -> float:
    """1 - normalised word-level edit distance, in [0, 1]."""
    return 1.0 - E.edit_distance(text, counterfactual)


def char_similarity(text: str, counterfactual: str) -> float:
    """difflib's character-level ratio, in [0, 1]."""
    return difflib.SequenceMatcher(a=text, b=counterfactual, autojunk=False).ratio()


def pieces_per_word(text: str, tokenizer) -> float:
    """Mean subword pieces per whitespace word; an unknown token counts as 3 pieces."""
    words = E.words(text)
    if not words:
        return 0.0
    ids = tokenizer(words, add_special_tokens=False)["input_ids"]  # one list per word
    unk = getattr(tokenizer, "unk_token_id", None)
    return float(np.mean([sum(3 if t == unk else 1 for t in x) or 1 for x in ids]))


def tokenizer_fit(text: str, counterfactual: str, tokenizer) -> float:
    """Pieces per word of the original over the counterfactual's, capped at 1 (1: the new words are as common)."""
    after = pieces_per_word(counterfactual, tokenizer)
    return 1.0 if after == 0 else min(1.0, pieces_per_word(text, tokenizer) / after)


def margin(probs: Sequence[float], target: int) -> float:
    """Target probability minus the best other class's."""
    if not probs:
        return float("nan")
    return float(probs[target] - max(p for k, p in enumerate(probs) if k != target))


def score(cfs: Sequence[Counterfactual], teacher: Teacher | None = None) -> list[dict[str, Any]]:
    """One dict of scores per counterfactual (embedding and tokenizer scores when the teacher allows them)."""
    cfs = list(cfs)
    rows = [
        {
            "similarity": round(similarity(cf.text, cf.counterfactual), 4) if cf.counterfactual else 0.0,
            "char_similarity": round(char_similarity(cf.text, cf.counterfactual), 4) if cf.counterfactual else 0.0,
            "margin": round(margin(cf.counterfactual_teacher_probs, cf.target), 4),
            **({"fluency": cf.fluency} if cf.fluency is not None else {}),
        }
        for cf in cfs
    ]
    if teacher is None or not cfs:
        return rows
    done = [i for i, cf in enumerate(cfs) if cf.counterfactual]
    if hasattr(teacher, "embed") and done:
        a = np.asarray(teacher.embed([cfs[i].text for i in done]), dtype=np.float64)  # (n, hidden)
        b = np.asarray(teacher.embed([cfs[i].counterfactual for i in done]), dtype=np.float64)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        for i, c in zip(done, cos):
            rows[i]["embedding_cosine"] = round(float(c), 4)
    tokenizer = getattr(teacher, "tokenizer", None)
    if tokenizer is not None:
        for i in done:
            rows[i]["tokenizer_fit"] = round(tokenizer_fit(cfs[i].text, cfs[i].counterfactual, tokenizer), 4)
    return rows
