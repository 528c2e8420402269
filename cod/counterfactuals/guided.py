"""Counterfactuals for an expensive teacher (an LLM, an API): a cheap guide teacher searches, the real one checks.

A proposer's search scores dozens of candidate texts per counterfactual (the lexical search ~40). With a 0.5B LLM
on CPU or a paid API as the teacher that is the whole cost of a run. `GuidedProposer` lets a cheap classifier with
the same label names (the demo classifier, say) do the searching; the real teacher then scores each original once
(to choose the target) and each resulting counterfactual once. Its answer is the counterfactual's verdict and label,
exactly as for an unguided one: `Counterfactual.flipped` reads the real teacher's probabilities, and distillation
drops a counterfactual the teacher did not flip (`keep_unflipped` keeps it, labelled by the teacher). What the
guide thought is kept in `extra["guide"]`, so a run can say how many of the guide's flips the teacher confirmed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cod.counterfactuals.base import Counterfactual, Progress, default_target, resolve_targets, wins
from cod.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from cod.counterfactuals.base import Proposer
    from cod.data.readers import Example
    from cod.modeling.scoring import Teacher


def check_guide(guide: Any, teacher: Any) -> None:
    """A `ConfigError` unless `guide` answers with the teacher's label names, in the same order."""
    mine, theirs = [str(n).lower() for n in guide.label_names], [str(n).lower() for n in teacher.label_names]
    if mine != theirs:
        raise ConfigError(
            f"The guide teacher {guide.name!r} has labels {list(guide.label_names)} but the teacher {teacher.name!r} "
            f"has {list(teacher.label_names)}: a guide must answer with the same label names in the same order."
        )


class GuidedProposer:
    """`inner`'s search run against `guide`; every counterfactual then scored by the real teacher, whose verdict it
    carries. `shrink`: revert edits the guide's flip does not need before the teacher checks (the LLM proposer)."""

    def __init__(self, inner: Proposer, guide: Teacher, shrink: bool = False):
        self.inner = inner
        self.guide = guide
        self.shrink = shrink
        self.name = inner.name

    @property
    def config(self):
        """The inner proposer's settings."""
        return self.inner.config

    def __repr__(self) -> str:
        return f"GuidedProposer({self.inner!r}, guide={self.guide.name!r})"

    def propose(
        self,
        examples: Sequence[Example | str],
        teacher: Teacher,
        target: Sequence[int | str | None] | int | str | None = None,
        n: int = 1,
        on_progress: Progress | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[Counterfactual]:
        """One counterfactual per example, in order, scored by `teacher` (targets from its answers on the originals).

        An example the guide already labels as the target cannot be guided there: it carries an error and no text."""
        from cod.data.readers import Example

        check_guide(self.guide, teacher)
        texts = [e if isinstance(e, str) else e.text for e in examples]
        if not texts:
            return []
        probs = teacher.predict_proba(texts)  # (n, L), one forward per original
        examples = [Example(e, int(p.argmax())) if isinstance(e, str) else e for e, p in zip(examples, probs)]
        asked = resolve_targets(target, len(texts), teacher.label_names)
        targets = [default_target(p) if t is None else t for t, p in zip(asked, probs)]
        guide_probs = self.guide.predict_proba(texts)  # (n, L)
        search = [i for i, t in enumerate(targets) if not wins(guide_probs[i], t)]
        found = self._search([examples[i] for i in search], [targets[i] for i in search], n, on_progress, stop)
        by_index = dict(zip(search, found))
        out = [
            by_index.get(i) or self._unguidable(examples[i], probs[i], targets[i], teacher.label_names)
            for i in range(len(texts))
        ]
        return self._check(out, probs, teacher)

    def _search(self, examples, targets, n, on_progress, stop) -> list[Counterfactual]:
        if not examples:
            return []
        found = self.inner.propose(examples, self.guide, target=targets, n=n, on_progress=on_progress, stop=stop)
        if self.shrink:
            from cod.counterfactuals.shrink import shrink

            found = [shrink(cf, self.guide) for cf in found]
        return found

    def _unguidable(self, example: Example, probs, target: int, names: Sequence[str]) -> Counterfactual:
        return Counterfactual(
            text=example.text,
            label=example.label,
            teacher_probs=[float(p) for p in probs],
            counterfactual="",
            target=target,
            counterfactual_teacher_probs=[],
            proposer=self.name,
            error=(
                f"The guide teacher {self.guide.name!r} already predicts {names[target]!r} for this text, so it "
                "cannot guide a search there: use a guide that agrees with the teacher more often, or no guide."
            ),
            extra={"guide": {"teacher": self.guide.name}},
        )

    def _check(self, cfs: list[Counterfactual], probs, teacher: Teacher) -> list[Counterfactual]:
        """The counterfactuals with the real teacher's probabilities on originals and edits (one batch)."""
        edited = list(dict.fromkeys(c.counterfactual for c in cfs if c.counterfactual))
        scored = dict(zip(edited, teacher.predict_proba(edited))) if edited else {}
        out = []
        for cf, p in zip(cfs, probs):
            if not cf.counterfactual:
                out.append(dataclasses.replace(cf, teacher_probs=[float(x) for x in p], edits=cf.edits))
                continue
            extra = dict(cf.extra)
            guide = {
                "teacher": self.guide.name,
                "probs": list(cf.counterfactual_teacher_probs),
                "flipped": cf.flipped,
                "attempts": cf.attempts,
            }
            if "alternatives" in extra:  # flips of the guide, never shown to the teacher: not offered as its flips
                guide["alternatives"] = extra.pop("alternatives")
            extra["guide"] = guide
            out.append(
                dataclasses.replace(
                    cf,
                    teacher_probs=[float(x) for x in p],
                    counterfactual_teacher_probs=[float(x) for x in scored[cf.counterfactual]],
                    attempts=1,
                    edits=cf.edits,
                    extra=extra,
                )
            )
        return out


def guide_confirmation(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """From counterfactual records (`Counterfactual.to_record`): how many the guide flipped, how many of those the
    teacher confirmed, and how many examples the guide could not search (it already predicted the target)."""
    guided = [r for r in records if "guide" in (r.get("extra") or {})]
    searched = [r for r in guided if r["counterfactual"]]
    flipped = [r for r in searched if r["extra"]["guide"].get("flipped")]
    return {
        "guide": guided[0]["extra"]["guide"]["teacher"] if guided else "",
        "searched": len(searched),
        "guide_flipped": len(flipped),
        "teacher_confirmed": sum(bool(r["flipped"]) for r in flipped),
        "teacher_flipped": sum(bool(r["flipped"]) for r in searched),
        "unguidable": len(guided) - len(searched),
    }
