"""Controls for CoD's counterfactuals, made by the offline proposer's own edit machinery.

- `augment_edits`: the equal-budget control. For each counterfactual CoD trains on, an edit of the same original
  with the same number of words changed, built from the lexical proposer's candidate edits (lexicon substitutes,
  antonyms, negation, hedges, deletion) at random content words, picked at random: the teacher never chooses it,
  so it flips only by chance. It is scored by the teacher once and trained exactly as CoD's counterfactuals are
  (its label is the teacher's argmax). If CoD beats this, the gain comes from choosing edits that flip the teacher,
  not from more teacher-labelled text near the examples.
- `more_counterfactuals`: m flips per example (the proposer's, the other same-size flips its search found, and
  one-word-larger extensions that still flip), for `cod-m`: beyond the paper's budget matching on purpose.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual, wins

if TYPE_CHECKING:  # pragma: no cover
    from cod.counterfactuals.lexical import LexicalProposer
    from cod.modeling.scoring import Teacher

AUGMENT = "augment"
SIZE_TRIES = 20  # random draws tried per augment edit until its size matches the counterfactual's
EXTENSION_POSITIONS = 3  # random content words each base flip is extended at, for larger flips


def _rng(seed: int, text: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**32, zlib.crc32(text.encode())])


def content_positions(words: Sequence[str]) -> list[int]:
    """Word positions the proposer edits: content words (not function words), or every word of a text without any."""
    from cod.counterfactuals.lexical import OCCLUSION_SKIP, split_word

    sites = [i for i, w in enumerate(words) if re.search(r"\w", w) and split_word(w)[1].lower() not in OCCLUSION_SKIP]
    return sites or [i for i, w in enumerate(words) if re.search(r"\w", w)] or list(range(len(words)))


def _random_ops(
    proposer: LexicalProposer,
    teacher: Teacher,
    words: Sequence[str],
    size: int,
    current: int,
    target: int,
    rng: np.random.Generator,
    avoid: set[int] = frozenset(),
) -> list:
    """`size` candidate edits of the proposer at random content positions (one each), each picked at random."""
    from cod.counterfactuals.lexical import Op

    ops: list = []
    used = set(avoid)
    for i in rng.permutation(content_positions(words)):
        if len(ops) == size:
            break
        i = int(i)
        if i in used:
            continue
        cands = [op for op in proposer.candidate_edits(words, i, current, target, teacher) if op.pos not in used]
        cands.append(Op("del", i, source="delete"))
        op = cands[int(rng.integers(len(cands)))]
        ops.append(op)
        used.add(op.pos)
    return ops


def augment_edits(
    counterfactuals: Sequence[Counterfactual], teacher: Teacher, seed: int = 0, proposer: LexicalProposer | None = None
) -> list[Counterfactual]:
    """One random same-size edit per flipped counterfactual (see the module docstring), scored by the teacher."""
    from cod.counterfactuals.lexical import LexicalProposer, render

    proposer = proposer or LexicalProposer(cache_dir=False)
    chosen = [c for c in counterfactuals if c.counterfactual and not c.error and c.flipped]
    texts, records = [], []
    for cf in chosen:
        words, size = E.words(cf.text), max(cf.words_changed, 1)
        current, rng = int(np.argmax(cf.teacher_probs)), _rng(seed, cf.text)
        best = None
        for _ in range(SIZE_TRIES):  # adjacent edits can merge into a larger one: draw again until the size matches
            ops = _random_ops(proposer, teacher, words, size, current, cf.target, rng)
            text = render(words, ops)
            gap = abs(E.words_changed(E.diff(cf.text, text)) - size)
            if best is None or gap < best[0]:
                best = (gap, text, ops)
            if gap == 0:
                break
        texts.append(best[1])
        records.append((cf, best[2]))
    probs = teacher.predict_proba(texts) if texts else np.zeros((0, 0))
    return [
        Counterfactual(
            text=cf.text,
            label=cf.label,
            teacher_probs=list(cf.teacher_probs),
            counterfactual=text,
            target=cf.target,
            counterfactual_teacher_probs=[float(p) for p in row],
            proposer=AUGMENT,
            model=proposer.model,
            attempts=0,
            extra={
                "control": AUGMENT,
                "matched_words_changed": cf.words_changed,
                "seed": int(seed),
                "ops": [f"{o.source}:{o.kind}@{o.pos}" for o in ops],
            },
        )
        for (cf, ops), text, row in zip(records, texts, probs)
    ]


def more_counterfactuals(
    counterfactuals: Sequence[Counterfactual],
    teacher: Teacher,
    m: int,
    seed: int = 0,
    proposer: LexicalProposer | None = None,
) -> list[Counterfactual]:
    """Up to `m` distinct flips per flipped counterfactual's original (the given one first), of varied sizes:
    the same-size alternatives its search found, and extensions by one more random candidate edit that still flip."""
    from cod.counterfactuals.lexical import LexicalProposer

    proposer = proposer or LexicalProposer(cache_dir=False)
    out: list[Counterfactual] = []
    for cf in counterfactuals:
        out.append(cf)
        if m > 1 and cf.counterfactual and not cf.error and cf.flipped:
            out += _extra_flips(cf, teacher, m - 1, _rng(seed, cf.text), proposer)
    return out


def _extra_flips(
    cf: Counterfactual, teacher: Teacher, count: int, rng: np.random.Generator, proposer: LexicalProposer
) -> list[Counterfactual]:
    """`count` more flips of `cf.text` (teacher-checked), alternating edit sizes from the smallest."""
    from cod.counterfactuals.lexical import render

    bases = [cf.counterfactual] + [t for t in cf.extra.get("alternatives", []) if isinstance(t, str)]
    texts = list(bases[1:])
    for base in bases[:3]:  # larger flips: a base flip plus one more random candidate edit, toward the same target
        words = E.words(base)
        edited = {i for i, (a, b) in enumerate(zip(words, E.words(cf.text))) if a != b}
        for _ in range(EXTENSION_POSITIONS):
            ops = _random_ops(proposer, teacher, words, 1, cf.target, cf.target, rng, avoid=edited)
            if ops:
                texts.append(render(words, ops))
    texts = [t for t in dict.fromkeys(texts) if t not in (cf.text, cf.counterfactual)]
    if not texts:
        return []
    probs = teacher.predict_proba(texts)  # (n, L)
    flips = [
        (E.words_changed(E.diff(cf.text, t)), -float(p[cf.target]), t, p)
        for t, p in zip(texts, probs)
        if wins(p, cf.target)
    ]
    by_size: dict[int, list] = {}
    for flip in sorted(flips, key=lambda f: (f[0], f[1])):
        by_size.setdefault(flip[0], []).append(flip)
    picked = []
    while len(picked) < count and any(by_size.values()):
        for size in sorted(by_size):  # one of each size in turn, so the m flips differ in size where they can
            if by_size[size] and len(picked) < count:
                picked.append(by_size[size].pop(0))
    return [
        Counterfactual(
            text=cf.text,
            label=cf.label,
            teacher_probs=list(cf.teacher_probs),
            counterfactual=t,
            target=cf.target,
            counterfactual_teacher_probs=[float(x) for x in p],
            proposer=cf.proposer,
            model=cf.model,
            prompt_version=cf.prompt_version,
            extra={"control": "cod-m", "rank": rank + 2},
        )
        for rank, (_, _, t, p) in enumerate(picked)
    ]
