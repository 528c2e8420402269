"""The few-shot draw and the held-out rules: the only place that decides which example goes where.

- `sample_few_shot`: the seeded, class-balanced draw of k examples (classes interleaved).
- `cod_real_half`: CoD's real half, the first k/2 of that draw.
- `held_out`: a validation set carved from the examples NOT drawn, so it never holds a training example,
  whatever draws came before; none at all when every example is drawn (the true few-shot case).
- `without_drawn`: a given held-out set (a validation file, a task's split) minus any text of the draw.
- `task_validation`: a built-in task's fixed validation split, carved once from its train split.

Examples are compared by text (and text pair): the same sentence under two row numbers is the same example.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cod.data.readers import Example
from cod.errors import DataError

HELD_OUT_MAX = 500  # validation examples carved from a file's rows that were not drawn
HELD_OUT_SEED = 20253  # one fixed permutation of a file's rows orders the held-out candidates


def _key(example: Example) -> tuple[str, str | None]:
    return example.text, example.text_pair


def sample_few_shot(
    examples: Sequence[Example],
    k: int,
    seed: int = 0,
    label_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> list[Example]:
    """Class-balanced few-shot draw: k // C per class, seeded, classes interleaved (c0, c1, c0, c1, ...).

    Each class is shuffled with its own generator seeded by (seed, class), so a draw does not depend on the other
    classes' sizes and the draw for a smaller k is a prefix of the draw for a larger one. Any prefix of C*m
    examples holds m per class.
    """
    if num_classes is None:
        inferred = max((e.label for e in examples), default=-1) + 1
        num_classes = len(label_names) if label_names is not None else inferred
    names = list(label_names) if label_names is not None else [str(i) for i in range(num_classes)]
    if num_classes < 2:
        raise DataError(f"Few-shot sampling needs at least two classes, got {num_classes}.")
    if k < num_classes:
        raise DataError(
            f"k={k} is smaller than the number of classes ({num_classes}): choose k of at least "
            f"{num_classes} (k // {num_classes} per class)."
        )
    per_class = k // num_classes
    by_class: list[list[Example]] = [[] for _ in range(num_classes)]
    for e in examples:
        if not 0 <= e.label < num_classes:
            raise DataError(
                f"Example {e.text[:40]!r} has label {e.label}, outside 0..{num_classes - 1}: "
                "pass the task's label_names."
            )
        by_class[e.label].append(e)
    short = [f"{names[c]!r} has {len(xs)}" for c, xs in enumerate(by_class) if len(xs) < per_class]
    if short:
        raise DataError(
            f"k={k} needs {per_class} examples per class but {', '.join(short)}: choose a smaller k or "
            "add examples."
        )
    picks = []
    for c, xs in enumerate(by_class):
        order = np.random.default_rng([seed % 2**32, c]).permutation(len(xs))[:per_class]
        picks.append([xs[i] for i in order])
    return [picks[c][i] for i in range(per_class) for c in range(num_classes)]


def cod_real_half(draw: Sequence[Example]) -> list[Example]:
    """CoD's real half: the first k/2 of the same seeded draw (balanced, since the draw interleaves classes)."""
    return list(draw[: len(draw) // 2])


def task_validation(train: Sequence[Example], size: int, seed: int) -> tuple[list[Example], list[int]]:
    """A built-in task's fixed validation split carved from its train split (GLUE hides its test labels): the first
    min(size, len(train) // 5) of one seeded permutation; returns it and the order of the rest (train)."""
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = min(size, len(train) // 5)
    return [train[i] for i in order[:n_val]], [int(i) for i in order[n_val:]]


def not_drawn(pool: Sequence[Example], draw: Sequence[Example]) -> list[Example]:
    """The pool's examples whose text is not in the draw, in pool order."""
    drawn = {_key(e) for e in draw}
    return [e for e in pool if _key(e) not in drawn]


def held_out(
    pool: Sequence[Example], draw: Sequence[Example], size: int = HELD_OUT_MAX, seed: int = HELD_OUT_SEED
) -> list[Example]:
    """Up to `size` validation examples from the pool's rows that were not drawn (one fixed seeded order).

    Recomputed for every draw, so it never holds an example of the current draw; empty when the draw took the
    whole pool (a user with exactly k labels trains on all k).
    """
    rest = not_drawn(pool, draw)
    order = np.random.default_rng(seed).permutation(len(rest))[: max(0, int(size))]
    return [rest[i] for i in sorted(order)]


def without_drawn(examples: Sequence[Example], draw: Sequence[Example]) -> tuple[list[Example], int]:
    """A given held-out set minus the draw's texts, and how many it lost (checkpoints are never chosen on them)."""
    kept = not_drawn(examples, draw)
    return kept, len(examples) - len(kept)
