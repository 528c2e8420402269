"""Does the student's decision boundary sit where the teacher's does? Measured on probe pairs (a held-out original
and its counterfactual), never on training examples.

- Flip fidelity: the share of pairs the teacher flips on which the student predicts the teacher's class on both
  sides, i.e. flips exactly as the teacher does.
- Edit-path distance: apply a pair's word edits one at a time (left to right) and find the first step at which each
  model predicts the counterfactual's target class; the distance is how many steps apart the two crossings are
  (a discrete stand-in for the paper's Hausdorff distance between boundaries). A model that never crosses gets
  step `n_edits + 1`; one that already predicts the target on the original gets step 0.
- Boundary points: originals and counterfactuals projected to 2-D from the teacher's embeddings, for the plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual
from cod.errors import DataError
from cod.eval.metrics import scorer_probs


def probe_pairs(
    examples: Sequence,
    teacher: Any,
    n: int = 64,
    seed: int = 0,
    proposer: str = "lexical",
    config: Any = None,
    train_texts: Sequence[str] = (),
    **kw: Any,
) -> list[Counterfactual]:
    """Counterfactual pairs for `n` seeded held-out examples (the teacher flips them; failures are dropped)."""
    from cod.counterfactuals import propose

    train = set(train_texts)
    pool = [e for e in examples if e.text not in train]
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in sorted(rng.permutation(len(pool))[:n])]
    pairs = propose(chosen, teacher, proposer=proposer, config=config, **kw)
    return [p for p in pairs if p.counterfactual and not p.error and p.flipped]


def check_held_out(pairs: Sequence[Counterfactual], train_texts: Sequence[str]) -> None:
    """Raise DataError if a probe pair's original is a training text (probes must be held out)."""
    train = set(train_texts)
    leaked = [p.text for p in pairs if p.text in train]
    if leaked:
        raise DataError(
            f"{len(leaked)} probe pair(s) start from training examples (first: {leaked[0][:80]!r}): "
            "make probe pairs from validation or test examples only."
        )


def flip_table(pairs: Sequence[Counterfactual], teacher: Any, student: Any) -> pd.DataFrame:
    """One row per pair: both models' predictions on original and counterfactual, and whether the student flips
    exactly as the teacher does."""
    if not pairs:
        return pd.DataFrame(columns=["pair_id", "teacher_flipped", "student_flipped", "same_flip"])
    originals = [p.text for p in pairs]
    cfs = [p.counterfactual for p in pairs]
    t = scorer_probs(teacher, originals + cfs)  # (2n, L)
    s = scorer_probs(student, originals + cfs, t.shape[1])
    n = len(pairs)
    tp, sp = t.argmax(axis=1), s.argmax(axis=1)
    df = pd.DataFrame(
        {
            "pair_id": range(n),
            "text": originals,
            "counterfactual": cfs,
            "target": [p.target for p in pairs],
            "n_edits": [len(p.edits) for p in pairs],
            "teacher_pred": tp[:n],
            "teacher_cf_pred": tp[n:],
            "student_pred": sp[:n],
            "student_cf_pred": sp[n:],
            "teacher_p_target": t[np.arange(n), [p.target for p in pairs]],
            "teacher_cf_p_target": t[np.arange(n) + n, [p.target for p in pairs]],
            "student_p_target": s[np.arange(n), [p.target for p in pairs]],
            "student_cf_p_target": s[np.arange(n) + n, [p.target for p in pairs]],
        }
    )
    df["teacher_flipped"] = df.teacher_pred != df.teacher_cf_pred
    df["student_flipped"] = df.student_pred != df.student_cf_pred
    df["same_flip"] = (
        df.teacher_flipped & (df.student_pred == df.teacher_pred) & (df.student_cf_pred == df.teacher_cf_pred)
    )
    return df


def edit_paths(pair: Counterfactual) -> list[str]:
    """The texts along a pair's edit path: step 0 is the original, step i applies the first i edits (left to right)."""
    edits = sorted(pair.edits or E.diff(pair.text, pair.counterfactual), key=lambda e: (e.start, e.end))
    return [E.apply(pair.text, edits[:i]) for i in range(len(edits) + 1)]


def edit_path_table(pairs: Sequence[Counterfactual], teacher: Any, student: Any) -> pd.DataFrame:
    """Long table, one row per (pair, step): the text and each model's probability of the target class and
    prediction."""
    rows, texts = [], []
    for pid, pair in enumerate(pairs):
        path = edit_paths(pair)
        for step, text in enumerate(path):
            rows.append({"pair_id": pid, "step": step, "n_steps": len(path) - 1, "target": pair.target, "text": text})
            texts.append(text)
    if not rows:
        return pd.DataFrame(columns=["pair_id", "step", "n_steps", "target", "text"])
    df = pd.DataFrame(rows)
    t = scorer_probs(teacher, texts)
    s = scorer_probs(student, texts, t.shape[1])
    idx = np.arange(len(df))
    df["teacher_p_target"] = t[idx, df.target]
    df["student_p_target"] = s[idx, df.target]
    df["teacher_pred"] = t.argmax(axis=1)
    df["student_pred"] = s.argmax(axis=1)
    return df


def crossing_steps(path_df: pd.DataFrame) -> pd.DataFrame:
    """Per pair: the first step at which each model predicts the target (n_steps + 1: never), and the distance."""
    out = []
    for pid, g in path_df.groupby("pair_id", sort=True):
        g = g.sort_values("step")
        n_steps = int(g.n_steps.iloc[0])
        row: dict[str, Any] = {"pair_id": pid, "n_steps": n_steps}
        for who in ("teacher", "student"):
            hit = g.step[g[f"{who}_pred"] == g.target]
            row[f"{who}_step"] = int(hit.iloc[0]) if len(hit) else n_steps + 1
        row["distance"] = abs(row["teacher_step"] - row["student_step"])
        row["distance_norm"] = row["distance"] / (n_steps + 1)
        out.append(row)
    return pd.DataFrame(
        out, columns=["pair_id", "n_steps", "teacher_step", "student_step", "distance", "distance_norm"]
    )


def boundary_fidelity(pairs: Sequence[Counterfactual], teacher: Any, student: Any) -> dict[str, float]:
    """Summary of the boundary comparison on probe pairs (flip fidelity, flip rates, edit-path distance)."""
    flips = flip_table(pairs, teacher, student)
    steps = crossing_steps(edit_path_table(pairs, teacher, student))
    teacher_flipped = flips[flips.teacher_flipped] if len(flips) else flips
    nan = float("nan")
    return {
        "probe_pairs": len(flips),
        "teacher_flip_rate": float(flips.teacher_flipped.mean()) if len(flips) else nan,
        "student_flip_rate": float(flips.student_flipped.mean()) if len(flips) else nan,
        "flip_fidelity": float(teacher_flipped.same_flip.mean()) if len(teacher_flipped) else nan,
        "edit_path_distance": float(steps.distance.mean()) if len(steps) else nan,
        "edit_path_distance_norm": float(steps.distance_norm.mean()) if len(steps) else nan,
        "edit_path_same_step": float((steps.distance == 0).mean()) if len(steps) else nan,
    }


def project_2d(X: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of rows of X, (n, 2), and the method used: 'umap' when asked for (or 'auto') and installed,
    else 'pca'."""
    X = np.asarray(X, dtype=float)
    if method not in {"auto", "pca", "umap"}:
        raise ValueError(f"projection {method!r} is not auto, pca or umap.")
    if method in {"auto", "umap"} and len(X) > 3:
        try:
            import umap  # type: ignore[import-not-found]

            reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(X) - 1), random_state=seed)
            return np.asarray(reducer.fit_transform(X)), "umap"
        except ImportError:
            if method == "umap":
                raise DataError("UMAP is not installed: `pip install umap-learn`, or use projection 'pca'.") from None
    Xc = X - X.mean(axis=0, keepdims=True)
    if len(X) < 2:
        return np.zeros((len(X), 2)), "pca"
    # PCA through SVD: rows of vt are principal directions; the sign is fixed so the picture is repeatable.
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    comps = vt[:2]
    comps = comps * np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    xy = Xc @ comps.T
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((len(xy), 2 - xy.shape[1]))])
    return xy, "pca"


def boundary_points(
    pairs: Sequence[Counterfactual],
    teacher: Any,
    student: Any,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    class_index: int | None = None,
    projection: str = "auto",
    label_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Originals and counterfactuals with 2-D coordinates from the teacher's embeddings (`teacher.embed` unless
    `embed` is given) and both models' probability of `class_index` (default: the last class, 'positive')."""
    texts = [p.text for p in pairs] + [p.counterfactual for p in pairs]
    n = len(pairs)
    if not n:
        return pd.DataFrame(columns=["pair_id", "kind", "text", "x", "y", "teacher_p", "student_p", "disagree"])
    embed = embed or getattr(teacher, "embed", None)
    if embed is None:
        raise DataError(
            "The boundary view needs the teacher's embeddings: pass `embed` or a teacher with `.embed(texts)`."
        )
    t = scorer_probs(teacher, texts)
    s = scorer_probs(student, texts, t.shape[1])
    c = t.shape[1] - 1 if class_index is None else class_index
    xy, used = project_2d(np.asarray(embed(texts)), projection)
    names = list(label_names) if label_names else [str(i) for i in range(t.shape[1])]
    df = pd.DataFrame(
        {
            "pair_id": list(range(n)) * 2,
            "kind": ["original"] * n + ["counterfactual"] * n,
            "text": texts,
            "x": xy[:, 0],
            "y": xy[:, 1],
            "teacher_p": t[:, c],
            "student_p": s[:, c],
            "teacher_pred": [names[i] for i in t.argmax(axis=1)],
            "student_pred": [names[i] for i in s.argmax(axis=1)],
        }
    )
    df["disagree"] = df.teacher_pred != df.student_pred
    df.attrs.update(projection=used, class_name=names[c])
    return df
