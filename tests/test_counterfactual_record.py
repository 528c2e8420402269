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
