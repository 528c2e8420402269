"""Word-level edits between an original text and its counterfactual.

Texts are compared as whitespace-separated words, which round-trips exactly for the tokenised corpora
the paper uses (SST-2, Rotten Tomatoes) and keeps edits readable for a person.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Edit:
    """One diff operation: words `source[start:end]` become `new` (a delete has `new == ()`)."""

    op: str  # "replace" | "insert" | "delete"
    start: int
    end: int
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def size(self) -> int:
        """Words this edit touches: the larger of the removed and added spans."""
        return max(len(self.old), len(self.new))

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        d = asdict(self)
        d["old"], d["new"] = list(self.old), list(self.new)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Edit:
        """Inverse of `to_dict`."""
        return cls(d["op"], int(d["start"]), int(d["end"]), tuple(d["old"]), tuple(d["new"]))


def words(text: str) -> list[str]:
    """Split a text into the words edits are counted in."""
    return text.split()


def diff(source: str, target: str) -> list[Edit]:
    """The word-level edits that turn `source` into `target`."""
    a, b = words(source), words(target)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [
        Edit(tag, i1, i2, tuple(a[i1:i2]), tuple(b[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def words_changed(edits: Iterable[Edit]) -> int:
    """Total words touched by `edits`."""
    return sum(e.size for e in edits)


def apply(source: str, edits: Iterable[Edit]) -> str:
    """Apply a subset of `diff(source, ...)` edits to `source` (edits must not overlap)."""
    a = words(source)
    out: list[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        if e.start < pos:
            raise ValueError(f"overlapping edits at word {e.start}")
        out.extend(a[pos : e.start])
        out.extend(e.new)
        pos = e.end
    out.extend(a[pos:])
    return " ".join(out)


def edit_distance(source: str, target: str) -> float:
    """Word-level Levenshtein distance normalised by the longer text's length (0 same, 1 all different)."""
    a, b = words(source), words(target)
    if not a and not b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, wa in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, wb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wa != wb))
        prev = cur
    return prev[-1] / max(len(a), len(b))
