from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual, default_target, wins

NAMES = ["negative", "positive"]


def make(cf_probs, target=0):
    return Counterfactual(
        text="a great and moving film",
        label=1,
        teacher_probs=[0.1, 0.9],
        counterfactual="a dull and moving film",
        target=target,
        counterfactual_teacher_probs=cf_probs,
        proposer="lexical",
    )


def test_a_tie_is_not_a_flip():
    assert not make([0.5, 0.5]).flipped
    assert make([0.51, 0.49]).flipped
    assert not wins([0.3, 0.35, 0.35], 1)


def test_record_round_trip_keeps_every_field_and_names_labels():
    cf = make([0.8, 0.2])
    record = cf.to_record(NAMES)
    assert record["label"] == "positive" and record["target_label"] == "negative"
    assert record["flipped"] and record["words_changed"] == 1 and record["teacher_label"] == "negative"
    back = Counterfactual.from_record(record, NAMES)
    assert back.to_record(NAMES) == record


def test_edits_apply_subsets_and_distance():
    src, dst = "the film was good and fun", "the film was not good and dull"
    edits = E.diff(src, dst)
    assert E.apply(src, edits) == dst
    assert E.apply(src, []) == src
    assert E.words_changed(edits) == 2
    assert 0 < E.edit_distance(src, dst) < 1 and E.edit_distance(src, src) == 0


def test_default_target_is_the_runner_up():
    assert default_target([0.7, 0.1, 0.2]) == 2
    assert default_target([0.2, 0.8]) == 0


def test_targets_resolve_from_names_indices_or_one_per_example():
    import numpy as np
    import pytest

    from cod.counterfactuals.base import resolve_targets
    from cod.errors import ConfigError

    names = ["sports", "politics", "tech"]
    assert resolve_targets(None, 2, names) == [None, None]
    assert resolve_targets("tech", 2, names) == [2, 2]
    assert resolve_targets(np.int64(1), 1, names) == [1]
    assert resolve_targets(["sports", 2, None], 3, names) == [0, 2, None]
    with pytest.raises(ConfigError, match="'music' is not one of"):
        resolve_targets("music", 1, names)
    with pytest.raises(ConfigError, match="Got 2 targets for 3 examples"):
        resolve_targets([0, 1], 3, names)
    with pytest.raises(ConfigError, match="class index"):
        resolve_targets(3, 1, names)
