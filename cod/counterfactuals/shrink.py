"""Make a flipping counterfactual smaller: revert its edits one at a time while the teacher still flips."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual, wins

if TYPE_CHECKING:  # pragma: no cover
    from cod.modeling.scoring import Teacher


def split_edits(edits: list[E.Edit]) -> list[E.Edit]:
    """Word-for-word replacements split into one edit per word, so each word can be reverted on its own."""
    out: list[E.Edit] = []
    for e in edits:
        if e.op == "replace" and len(e.old) == len(e.new) > 1:
            out.extend(
                E.Edit("replace", e.start + k, e.start + k + 1, (o,), (n,))
                for k, (o, n) in enumerate(zip(e.old, e.new))
            )
        else:
            out.append(e)
    return out


def shrink(cf: Counterfactual, teacher: Teacher) -> Counterfactual:
    """A copy of `cf` with every edit the flip does not need reverted (greedy; one teacher batch per round).

    Each round scores the counterfactual with each remaining edit reverted and keeps the revert that leaves the
    highest target probability while the teacher still predicts the target. An unflipped `cf` comes back as is.
    """
    if (
        not cf.counterfactual
        or not cf.counterfactual_teacher_probs
        or not wins(cf.counterfactual_teacher_probs, cf.target)
    ):
        return cf
    edits = split_edits(E.diff(cf.text, cf.counterfactual))
    text, probs = cf.counterfactual, list(cf.counterfactual_teacher_probs)
    attempts = 0
    while len(edits) > 1:
        trials = [edits[:k] + edits[k + 1 :] for k in range(len(edits))]
        texts = [E.apply(cf.text, t) for t in trials]
        trial_probs = teacher.predict_proba(texts)  # (len(edits), L)
        attempts += len(texts)
        flipping = [k for k in range(len(texts)) if wins(trial_probs[k], cf.target)]
        if not flipping:
            break
        k = max(flipping, key=lambda k: trial_probs[k][cf.target])
        edits, text, probs = trials[k], texts[k], [float(p) for p in trial_probs[k]]
    if text == cf.counterfactual:
        return dataclasses.replace(cf, attempts=cf.attempts + attempts, extra=dict(cf.extra))
    extra = {**cf.extra, "shrunk_from": cf.words_changed}
    return dataclasses.replace(
        cf,
        counterfactual=text,
        counterfactual_teacher_probs=probs,
        attempts=cf.attempts + attempts,
        edits=E.diff(cf.text, text),
        extra=extra,
    )
