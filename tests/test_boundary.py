import numpy as np
import pytest

from cod.counterfactuals.base import Counterfactual
from cod.errors import DataError
from cod.eval.boundary import (
    boundary_fidelity,
    boundary_points,
    check_held_out,
    crossing_steps,
    edit_path_table,
    edit_paths,
    flip_table,
    project_2d,
)


def count_scorer(threshold):
    """Positive once a text holds at least `threshold` of the words good/great/fun (a boundary we can place)."""

    def score(texts):
        out = []
        for t in texts:
            hits = sum(w in {"good", "great", "fun"} for w in t.split())
            p = 0.9 if hits >= threshold else 0.1
            out.append([1 - p, p])
        return np.array(out)

    return score


def pair(text, cf, label=0, target=1):
    return Counterfactual(text, label, [0.9, 0.1], cf, target, [0.1, 0.9], proposer="test")


PAIRS = [
    pair("a bad dull boring film", "a good great fun film"),  # one edit: a three-word replace
    pair("bad film and dull plot and boring acting", "good film and great plot and fun acting"),  # three edits
    pair("the plot is bad", "the plot is good"),  # one edit
]


def test_edit_paths_apply_edits_one_at_a_time():
    path = edit_paths(PAIRS[1])
    assert path[0] == PAIRS[1].text and path[-1] == PAIRS[1].counterfactual
    assert path[1] == "good film and dull plot and boring acting"
    assert len(path) == 4


def test_flip_table_and_fidelity_with_known_boundaries():
    teacher = count_scorer(2)  # flips pairs 0 and 1 (they reach 3 hits), not pair 2 (1 hit)
    student_same = count_scorer(2)
    student_late = count_scorer(3)
    df = flip_table(PAIRS, teacher, student_same)
    assert list(df.teacher_flipped) == [True, True, False]
    assert df.same_flip.tolist() == [True, True, False]
    m = boundary_fidelity(PAIRS, teacher, student_same)
    assert m["flip_fidelity"] == 1.0 and m["edit_path_distance"] == 0.0 and m["probe_pairs"] == 3
    # A student whose boundary sits one edit later: still flips the same pairs, but crosses one step later on pair 1.
    steps = crossing_steps(edit_path_table(PAIRS, teacher, student_late))
    row = steps.set_index("pair_id").loc[1]
    assert (row.teacher_step, row.student_step, row.distance) == (2, 3, 1)
    # Pair 2 is never crossed by either model: both at n_steps + 1.
    assert steps.set_index("pair_id").loc[2, "distance"] == 0
    # A student that never says positive: no flips, crossings never.
    never = lambda texts: np.tile([0.8, 0.2], (len(texts), 1))  # noqa: E731
    m = boundary_fidelity(PAIRS, teacher, never)
    assert m["flip_fidelity"] == 0.0 and m["student_flip_rate"] == 0.0 and m["edit_path_distance"] > 0


def test_probes_must_be_held_out():
    check_held_out(PAIRS, ["some other text"])
    with pytest.raises(DataError, match="training examples"):
        check_held_out(PAIRS, ["the plot is bad"])


def test_empty_probe_sets_give_nan_not_errors():
    m = boundary_fidelity([], count_scorer(1), count_scorer(1))
    assert m["probe_pairs"] == 0 and np.isnan(m["flip_fidelity"])


def test_project_2d_pca_finds_the_main_direction():
    rng = np.random.default_rng(0)
    X = np.outer(np.linspace(-5, 5, 20), rng.normal(size=8)) + 0.01 * rng.normal(size=(20, 8))
    xy, used = project_2d(X, "pca")
    assert used == "pca" and xy.shape == (20, 2)
    assert np.var(xy[:, 0]) > 100 * np.var(xy[:, 1])
    assert np.allclose(project_2d(X, "pca")[0], xy)
    with pytest.raises(ValueError):
        project_2d(X, "tsne")


def test_boundary_points_mark_disagreements():
    teacher, student = count_scorer(2), count_scorer(3)
    embed = lambda texts: np.array([[len(t), t.count("good"), t.count("bad")] for t in texts], dtype=float)  # noqa: E731
    df = boundary_points(PAIRS, teacher, student, embed=embed, projection="pca", label_names=["negative", "positive"])
    assert len(df) == 6 and set(df.kind) == {"original", "counterfactual"}
    assert df.attrs["class_name"] == "positive"
    assert df.disagree.sum() == 0  # both end at 3 hits: agree on every endpoint
    df2 = boundary_points(PAIRS, teacher, count_scorer(4), embed=embed, projection="pca")
    assert df2.disagree.sum() == 2
    with pytest.raises(DataError, match="embeddings"):
        boundary_points(PAIRS, teacher, student)
