"""Labels: which column holds them, how raw values become class names, and what the normalisation changed.

A label column is taken only from a label-like name (label, sentiment, class, stars, ...) or the user's choice,
never guessed from content alone. Raw values are normalised (case folded, spaces collapsed, 1.0 -> 1); when that
merges or renames values, `folding_note` reports the mapping and the rows it changed, so nothing changes silently.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cod.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from cod.config import DataConfig

# Column names that say "label" (compared lower-cased, with spaces, dashes and dots as underscores).
LABEL_COLUMNS = (
    "label",
    "labels",
    "sentiment",
    "polarity",
    "class",
    "class_label",
    "category",
    "target",
    "gold_label",
    "y",
    "stars",
    "rating",
    "emotion",
    "intent",
    "topic",
    "tag",
)


# Label sets with a natural order (the first is class 0); any other set of strings is sorted naturally.
NATURAL_ORDERS = (
    ("negative", "neutral", "positive"),
    ("neg", "neu", "pos"),
    ("unacceptable", "acceptable"),
    ("false", "true"),
    ("no", "yes"),
    ("bad", "good"),
    ("rotten", "fresh"),
    ("ham", "spam"),
    ("not_duplicate", "duplicate"),
    ("entailment", "neutral", "contradiction"),
    ("low", "medium", "high"),
)
_INT = re.compile(r"^[+-]?\d+(\.0*)?$")


def label_key(value: Any) -> int | str | None:
    """An int, a normalised (case-folded, single-spaced) string, or None for a missing label."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return int(value) if float(value).is_integer() else str(value)
    text = " ".join(str(value).split()).casefold()
    if not text or text in {"nan", "none", "null", "n/a", "na"}:
        return None
    return _exact_int(text) if _INT.match(text) else text


def _exact_int(text: str) -> int | str:
    """'+12', '12.00' -> 12 exactly (through float, '1' * 400 overflowed and 31-digit labels merged); a number too
    long for int() stays text."""
    try:
        return int(text.strip().split(".")[0])
    except ValueError:  # over Python's 4,300-digit limit
        return text


def cached_key(raw: Any, cache: dict) -> int | str | None:
    if isinstance(raw, str | int):
        typed = (type(raw), raw)  # True == 1 and hash alike: keyed by value alone, a JSON true would take 1's class
        if typed not in cache:
            cache[typed] = label_key(raw)
        return cache[typed]
    return label_key(raw)


def natural_key(s: str) -> list:
    """Sort key: digit runs in numeric order (compared as text by length, so '²' or 5,000 digits never reach int())."""
    parts = re.split(r"(\d+)", s)
    return [(0, len(t.lstrip("0")), t.lstrip("0"), t) if i % 2 else (1, 0, t, "") for i, t in enumerate(parts) if t]


def infer_names(keys: set) -> tuple[list[str], dict, str]:
    """(label_names, key -> index, a note when the mapping is not the obvious one)."""
    if all(isinstance(k, int) for k in keys):
        ordered = sorted(keys)
        note = (
            ""
            if ordered == list(range(len(ordered)))
            else (f"Integer labels {ordered} were mapped to classes 0..{len(ordered) - 1} in that order.")
        )
        return [str(k) for k in ordered], {k: i for i, k in enumerate(ordered)}, note
    strings = {str(k) for k in keys}
    order = next((o for o in NATURAL_ORDERS if strings <= set(o)), None)
    names = [n for n in order if n in strings] if order else sorted(strings, key=natural_key)
    index = {n: i for i, n in enumerate(names)}
    return names, {k: index[str(k)] for k in keys}, ""


def explicit_index(key: int | str, names: list[str], from_classlabel: bool) -> int | None:
    """Index of `key` in explicit `names`; None for the `datasets` 'no label' marker -1; raises KeyError if unknown."""
    if isinstance(key, int):
        if all(_INT.match(n.strip()) for n in names):  # numeric names (e.g. stars "1".."5"): match by name
            keys = [_exact_int(n) for n in names]
            if key in keys:
                return keys.index(key)
        elif 0 <= key < len(names):
            return key
        if key == -1 and from_classlabel:
            return None
        if str(key) in names:
            return names.index(str(key))
        raise KeyError(key)
    folded = [n.strip().casefold() for n in names]
    if key in folded:
        return folded.index(key)
    raise KeyError(key)


def check_rare(rows: list, config: DataConfig, label_col: str, source: str, drop: Callable[[str, int], None]) -> list:
    """A label seen once while every other label is seen at least 5 times is likely a typo: error, or drop.

    `drop(reason, row)` records a dropped row in the caller's load report; `source` names the file in the error.
    """
    counts = Counter(key for *_, key in rows)
    rare = [k for k, n in counts.items() if n == 1]
    common = {k: n for k, n in counts.items() if n > 1}
    if not rare or not common or len(rows) < 10 or min(common.values()) < 5:
        return rows
    if config.drop_rare_labels:
        for row, *_, key in rows:
            if key in rare:
                drop("rare label", row)
        return [r for r in rows if r[3] not in rare]
    where = {key: row for row, *_, key in rows}
    parts = []
    for k in rare[:5]:
        close = difflib.get_close_matches(str(k), [str(c) for c in common], n=1, cutoff=0.6)
        parts.append(f"{k!r} (row {where[k]}" + (f", a typo of {close[0]!r}?)" if close else ")"))
    raise DataError(
        f"{source}: the label(s) {', '.join(parts)} occur only once in column {label_col!r}, while the other "
        f"labels occur at least {min(common.values())} times: likely typos. Fix those rows, set drop_rare_labels "
        f"(--drop-rare-labels) to drop them, or give label_names (--label-names) to keep them."
    )


def folding_note(pairs: Iterable[tuple[Any, str]]) -> str:
    """'Labels normalised ...: 'Positive', 'positive ' -> 'positive' (3 rows changed).' for (raw value, class name)
    pairs of the kept rows whose text differs from the name only in case or spaces; '' when none does."""
    forms: dict[str, Counter] = defaultdict(Counter)
    for raw, name in pairs:
        if isinstance(raw, str):
            forms[name][raw] += 1
    parts, changed = [], 0
    for name, counts in forms.items():
        differing = [raw for raw in counts if raw != name]
        if not differing:
            continue
        changed += sum(counts[raw] for raw in differing)
        shown = sorted(counts, key=lambda raw: (-counts[raw], raw))
        parts.append(", ".join(repr(raw) for raw in shown) + f" -> {name!r}")
    if not parts:
        return ""
    rows = f"{changed:,} row{'s' if changed != 1 else ''} changed"
    return f"Labels normalised (case folded, spaces stripped): {'; '.join(parts)} ({rows})."


def no_label_column(source: str, columns: Sequence[str]) -> DataError:
    """The error for a file without a label-like column: it lists the columns and says how to pick one."""
    err = DataError(
        f"{source} has no label column among {list(columns)}: none is named like a label "
        f"({', '.join(LABEL_COLUMNS[:6])}, stars, ...), and a label column is never guessed from its content. "
        f"Choose it with --label-column (in the app: Column mapping > Label column), or rename it to 'label'. "
        f"If the file has no header row, add one (e.g. text,label)."
    )
    err.columns = list(columns)  # the app offers them in its Label column control
    return err
