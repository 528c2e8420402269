"""How the lexical search chooses among the edits its teacher has scored (`cod.counterfactuals.lexical`): the flip
it keeps (fewest words changed, then fluent by the LM's estimate, read to the text's end for the front-runners), the
pairs of single edits it tries when no single flip reads as fluent, and the beam's spread of positions.

A state is (ops, text, teacher probabilities (L,)); `fluent` is the search's `SlotFit` for one original.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from cod.counterfactuals import edits as E
from cod.counterfactuals.edits import Op, render
from cod.counterfactuals.shrink import wins
from cod.counterfactuals.slotfit import SlotFit

MIN_ALTERNATIVES = 3  # other flipping texts kept per example (free: already scored), for "regenerate" in the app
FLUENT_PAIR_SINGLES = 8  # single edits (the most target-moving that read well enough) paired when no single is fluent
# A single edit may read badly only beside the word its partner replaces ("a good and awful film" -> "a good and great
# film"): singles and pairs estimated up to this much (nats/token) below "fluent" are paired; the pair must be fluent.
PAIR_SLACK = -0.5
FLUENT_PAIRS = 20  # of their pairs, the teacher scores at most this many (the highest summed log-odds gains)
# A flip that reads badly, with one of the non-flipping singles that read best beside it ("repairs": the partner
# lifts the text's estimate and does not pull it back): the flips and partners paired, the pairs the teacher scores.
REPAIR_FLIPS = 2
REPAIR_PARTNERS = 3
WHOLE_ROUNDS = 2  # rounds of reading front-running flips to the text's end, per choice
WHOLE_BATCH = 4  # flips read to the end per round (one LM batch): the front-runner and the next window-fluent ones


def diverse(ops: Sequence[Op], k: int, per_position: int = 3) -> list[Op]:
    """The first k ops, at most `per_position` at one position (a beam needs edits at different positions)."""
    taken: Counter = Counter()
    out = []
    for op in ops:
        if len(out) < k and taken[op.pos] < per_position:
            taken[op.pos] += 1
            out.append(op)
    return out


def log_odds(p: float) -> float:
    """log(p / (1 - p)), p clipped away from 0 and 1."""
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def fluent_pairs(words, states, probs0, target: int, fluent: SlotFit, seen: set) -> list[tuple[Op, Op]]:
    """Up to `FLUENT_PAIRS` pairs of scored single edits that do not flip alone, at different positions, each
    estimated at most `PAIR_SLACK` below fluent and so together (the estimates' changes add up), the pairs whose
    log-odds gains toward `target` sum highest first; none without an LM."""
    if fluent.windows is None:
        return []
    base = log_odds(probs0[target])
    gains = {ops[0]: log_odds(p[target]) - base for ops, _, p in states if len(ops) == 1 and not wins(p, target)}
    # The LM estimates only the most target-moving singles (most of them it has estimated already).
    ops = diverse(sorted(gains, key=lambda op: -gains[op]), 2 * FLUENT_PAIR_SINGLES, per_position=2)
    scores, _ = fluent.estimate([(op,) for op in ops])
    floor = fluent.fluent_at + PAIR_SLACK
    good = sorted(((gains[op], f, op) for op, f in zip(ops, scores) if f >= floor), key=lambda g: (-g[0], -g[1]))
    picked = good[:FLUENT_PAIR_SINGLES]
    pairs = sorted(
        (
            ((a, b) if a.pos < b.pos else (b, a), ga + gb)
            for k, (ga, fa, a) in enumerate(picked)
            for gb, fb, b in picked[k + 1 :]
            if a.pos != b.pos and fa + fb - fluent.shift >= floor
        ),
        key=lambda pair: -pair[1],
    )
    out = []
    for ops, _ in pairs:
        if len(out) < FLUENT_PAIRS and (text := render(words, ops)) not in seen:
            seen.add(text)
            out.append(ops)
    return out + repairs(words, states, target, gains, fluent, seen)


def repairs(words, states, target: int, gains: dict, fluent: SlotFit, seen: set) -> list[tuple[Op, Op]]:
    """Pairs of a single flip estimated not fluent (the `REPAIR_FLIPS` best estimated) with one of the
    `REPAIR_PARTNERS` non-flipping singles, not moving away from the target, the LM estimated best (in the search's
    window re-rank; none estimated anew), each pair estimated fluent: a flip's clumsy neighbourhood mended by a
    second edit."""
    flips = [ops[0] for ops, _, p in states if len(ops) == 1 and wins(p, target)]
    if not flips:
        return []
    scores = dict(zip(flips, fluent.estimate([(op,) for op in flips])[0]))
    bad = sorted((op for op in flips if scores[op] < fluent.fluent_at), key=lambda op: -scores[op])[:REPAIR_FLIPS]
    known = [(fluent.known[(op,)][0], op) for op in gains if gains[op] >= 0 and (op,) in fluent.known]
    partners = sorted(known, key=lambda g: -g[0])[:REPAIR_PARTNERS]
    out = []
    for a in bad:
        for fb, b in partners:
            ops = (a, b) if a.pos < b.pos else (b, a)
            if a.pos != b.pos and scores[a] + fb - fluent.shift >= fluent.fluent_at:
                if (text := render(words, ops)) not in seen:
                    seen.add(text)
                    out.append(ops)
    return out


def best_flip(text: str, states, target: int, n: int, fluent: SlotFit, floor: float):
    """The flipping state with the fewest words changed, then not losing more than `floor` nats of SLOR's
    numerator, then fluent enough (`fluent.fluent_at`), then the most fluent (the LM's estimate, asked of the
    flips only), then the highest target probability: (text, probs, ops, extra, estimated fluency); else None."""
    flips = [(ops, t, p) for ops, t, p in states if wins(p, target)]
    if not flips:
        return None
    scores, nats = fluent.estimate([ops for ops, _, _ in flips])
    sizes = [E.words_changed(E.diff(text, t)) for _, t, _ in flips]
    checked: set[int] = set()

    def rank() -> list[tuple]:
        return sorted(
            (sizes[k], nats[k] < floor, scores[k] < fluent.fluent_at, -scores[k], -p[target], k)
            for k, (_, _, p) in enumerate(flips)
        )

    # The front-runner's window estimate, when it says fluent, is read again to the text's end (a word can break
    # the clause further on: "rare illnesses that come by once in a while" fits three words on), with the next
    # window-fluent flips of its size in the same batch; one that falls below gives way to the next. A flip kept on
    # its window estimate alone would often be one the text's end undoes ("Love trusts even the most fragmented
    # charms"), so the rounds go on while the front-runner is unread.
    ranked = rank()
    for _ in range(WHOLE_ROUNDS):
        k = ranked[0][-1]
        if k in checked or scores[k] < fluent.fluent_at:
            break
        batch = [
            r[-1]
            for r in ranked
            if r[0] == ranked[0][0] and r[-1] not in checked and scores[r[-1]] >= fluent.fluent_at
        ]
        batch = batch[:WHOLE_BATCH]
        whole, whole_nats = fluent.estimate([flips[j][0] for j in batch], whole=True)
        scores, nats = scores.copy(), nats.copy()
        scores[batch], nats[batch] = whole, whole_nats
        checked.update(batch)
        ranked = rank()
    size, _, _, neg_f, _, k = ranked[0]
    ops, t, p = flips[k]
    alternatives = [flips[r[-1]][1] for r in ranked[1:] if r[0] == size][: max(n - 1, MIN_ALTERNATIVES)]
    extra = {"alternatives": alternatives} if alternatives else {}
    return t, p, ops, extra, -neg_f
