"""shrink: reverting edits the flip does not need, checked by a tiny word-driven teacher."""

import pytest

from cod.counterfactuals import edits as E
from cod.counterfactuals.base import Counterfactual
from cod.counterfactuals.shrink import shrink, split_edits, wins
from tests.tiny import make_word_classifier


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    path = make_word_classifier(tmp_path_factory.mktemp("word-binary"))
    return Teacher(AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path))


def _cf(teacher, text, counterfactual, target=0):
    probs = teacher.predict_proba([text, counterfactual])
    return Counterfactual(
        text, 1, probs[0].tolist(), counterfactual, target, probs[1].tolist(), proposer="test", attempts=5
    )


def test_unneeded_edits_are_reverted(teacher):
    cf = _cf(teacher, "the film was good and fun", "a movie was awful and dull")
    assert cf.flipped and cf.words_changed == 4
    small = shrink(cf, teacher)
    assert small.flipped and small.words_changed < cf.words_changed
    assert small.counterfactual.startswith("the film was")  # the neutral swaps went first
    assert small.extra["shrunk_from"] == 4 and small.attempts > cf.attempts
    assert small.counterfactual_teacher_probs == pytest.approx(
        teacher.predict_proba([small.counterfactual])[0].tolist()
    )
    assert small.edits == E.diff(small.text, small.counterfactual)
    assert cf.counterfactual == "a movie was awful and dull"  # the input is not modified


def test_needed_edits_stay_and_unflipped_is_untouched(teacher):
    cf = _cf(teacher, "the film was good", "the film was awful")
    assert shrink(cf, teacher).counterfactual == "the film was awful"
    unflipped = _cf(teacher, "the film was good and great and fun", "the film was good and great and dull")
    assert not unflipped.flipped and shrink(unflipped, teacher) is unflipped


def test_a_revert_that_ties_is_no_flip(teacher):
    # Reverting either word gives one positive and one negative word: a 0.5/0.5 tie, which is not a flip.
    cf = _cf(teacher, "good fun", "bad dull")
    assert shrink(cf, teacher).counterfactual == "bad dull"
    assert not wins([0.5, 0.5], 0) and wins([0.6, 0.4], 0) and not wins([0.2, 0.3, 0.5], 1)


def test_split_edits_one_word_each():
    edits = E.diff("a b c d", "a x y d")
    assert [e.size for e in edits] == [2]
    parts = split_edits(edits)
    assert [(e.start, e.old, e.new) for e in parts] == [(1, ("b",), ("x",)), (2, ("c",), ("y",))]
    assert E.apply("a b c d", parts[:1]) == "a x c d"
