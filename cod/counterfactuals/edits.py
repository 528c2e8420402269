"""Word-level edits between an original text and its counterfactual.

Texts are compared as whitespace-separated words, which round-trips exactly for the tokenised corpora
the paper uses (SST-2, Rotten Tomatoes) and keeps edits readable for a person. `Op` and `render` are the other
direction: edits a proposer makes to an original's words (capitalisation and attached punctuation kept).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class Op:
    """One edit of the original's words: 'sub' replaces word `pos`, 'ins' puts `word` before it, 'del' drops it."""

    kind: str
    pos: int
    word: str = ""
    source: str = ""  # why it was proposed: lexicon, antonym, negation, hedge, delete, pool


def split_word(token: str) -> tuple[str, str, str]:
    """('(', 'Great', '),') for '(Great),': punctuation around a word is kept when the word is replaced."""
    m = re.match(r"^(\W*)(.*?)(\W*)$", token, flags=re.S)
    prefix, core, suffix = m.groups() if m else ("", token, "")
    if not core:  # a token of punctuation only
        return "", token, ""
    return prefix, core, suffix


def match_case(template: str, word: str) -> str:
    """`word` written with `template`'s capitalisation (UPPER, Title or lower)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def render(words: Sequence[str], ops: Sequence[Op]) -> str:
    """The text after applying `ops` (at most one per position) to `words`."""
    by_pos = {op.pos: op for op in ops}
    out: list[str] = []
    for i, token in enumerate(words):
        op = by_pos.get(i)
        if op is None:
            out.append(token)
            continue
        if op.kind == "ins":
            out.extend([op.word, token])
        elif op.kind == "sub":
            out.append(op.word)
        else:  # "del": the article before it now meets the next word
            out.append(words[i + 1] if i + 1 < len(words) and i + 1 not in by_pos else "")
            fix_article(out)
            out.pop()
            continue
        fix_article(out, len(out) - (2 if op.kind == "ins" else 1))
    return " ".join(out)


def fix_article(out: list[str], k: int | None = None) -> None:
    """Make a bare 'a'/'an' before out[k] (default: the last word) agree with it: "an awful" -> "a good"."""
    k = len(out) - 1 if k is None else k
    if k < 1 or not out[k][:1].isalpha():
        return
    prefix, core, suffix = split_word(out[k - 1])
    if core.lower() in ("a", "an") and not suffix:
        article = "an" if out[k][0].lower() in "aeiou" else "a"
        out[k - 1] = prefix + match_case(core, article) + suffix


def spans(words: Sequence[str], ops: Sequence[Op]) -> list[tuple[int, int, tuple[str, ...]]]:
    """The rendered edit as spans of the original's words (`fluency.Span`): words[start:end] become the new words."""
    return [(e.start, e.end, e.new) for e in diff(" ".join(words), render(words, ops))]


def replace_core(token: str, new_core: str) -> str:
    """`token` with its word replaced by `new_core` in the same case, its punctuation kept."""
    prefix, core, suffix = split_word(token)
    return prefix + match_case(core, new_core) + suffix


def sentence_start(words: Sequence[str], i: int) -> bool:
    """Whether word i begins a sentence (the text's first word, or after . ! ? with any closing quotes)."""
    return i == 0 or bool(re.search(r"[.!?][\"')\u201d\u2019]*$", words[i - 1]))


def is_name(words: Sequence[str], i: int) -> bool:
    """Whether word i looks like a name or a title's word: capitalised, not all capitals, inside a sentence. Such
    words are neither replaced nor dropped ("Cuban music" -> "Vulture music", "Max pokes" -> "pokes")."""
    core = split_word(words[i])[1]
    return core[:1].isupper() and not core.isupper() and not sentence_start(words, i)
