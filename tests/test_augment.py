"""The controls of CoD's counterfactuals: equal-budget random edits (augment) and m flips per example (cod-m),
against a tiny word classifier whose verdicts are real teacher outputs."""

import pytest

from cod.config import DistillConfig, SweepConfig, method_scheme
from cod.counterfactuals.augment import AUGMENT, augment_edits, content_positions, more_counterfactuals
from cod.counterfactuals.lexical import LexicalProposer
from cod.data.readers import Example
from cod.distill.batching import build_training_set
from tests.test_lexical import _teacher
from tests.tiny import make_word_classifier

TEXTS = [
    "the film was good and the acting was lovely .",
    "a very boring plot and dull acting .",
    "the story is moving , the acting charming",
    "it is a tedious mess , bland and awful",
]


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    return _teacher(make_word_classifier(tmp_path_factory.mktemp("word-binary")))


@pytest.fixture(scope="module")
def proposer():
    return LexicalProposer(cache_dir=False)


@pytest.fixture(scope="module")
def cod_cfs(sentiment, proposer):
    return proposer.propose([Example(t, i % 2 == 0) for i, t in enumerate(TEXTS)], sentiment)


def test_augment_edits_match_sizes_and_take_the_teachers_label(sentiment, cod_cfs, proposer):
    flipped = [c for c in cod_cfs if c.flipped]
    assert len(flipped) >= 3
    edits = augment_edits(cod_cfs, sentiment, seed=0, proposer=proposer)
    assert [e.text for e in edits] == [c.text for c in flipped]  # one per counterfactual CoD trains on
    for edit, cf in zip(edits, flipped):
        assert edit.proposer == AUGMENT and edit.counterfactual != edit.text and edit.target == cf.target
        assert edit.words_changed == cf.words_changed == edit.extra["matched_words_changed"]
        probs = sentiment.predict_proba([edit.counterfactual])[0]
        assert edit.counterfactual_teacher_probs == pytest.approx(probs.tolist(), abs=1e-5)  # the teacher's verdict
    again = augment_edits(cod_cfs, sentiment, seed=0, proposer=proposer)
    assert [e.counterfactual for e in again] == [e.counterfactual for e in edits]  # seeded
    other = [augment_edits(cod_cfs, sentiment, seed=s, proposer=proposer) for s in range(1, 6)]
    assert any([e.counterfactual for e in o] != [e.counterfactual for e in edits] for o in other)


def test_augment_edits_are_random_content_edits_not_searched_flips(sentiment, cod_cfs, proposer):
    # Over many seeds the control picks positions at random: it lands on words the search never needed.
    edits = [e for s in range(20) for e in augment_edits(cod_cfs, sentiment, seed=s, proposer=proposer)]
    flipped = {c.text: c for c in cod_cfs if c.flipped}
    differ = sum(e.counterfactual != flipped[e.text].counterfactual for e in edits)
    assert differ > len(edits) // 2
    assert any(not e.flipped for e in edits)  # the teacher does not choose them, so some do not flip
    assert content_positions("the film was good".split()) == [1, 3]


def test_more_counterfactuals_give_distinct_flips_of_varied_sizes(sentiment, cod_cfs):
    out = more_counterfactuals(cod_cfs, sentiment, m=4, seed=0)
    by_text = {}
    for c in out:
        by_text.setdefault(c.text, []).append(c)
    assert [by_text[c.text][0] for c in cod_cfs] == list(cod_cfs)  # the proposer's own comes first
    extra = [c for c in out if c.extra.get("control") == "cod-m"]
    assert extra and all(c.flipped for c in extra)  # teacher-checked flips only
    for _text, cfs in by_text.items():
        assert len(cfs) <= 4 and len({c.counterfactual for c in cfs}) == len(cfs)
    assert len({c.words_changed for c in out if c.flipped}) >= 2


def test_cod_m_trains_every_real_example_with_m_counterfactuals(sentiment, cod_cfs):
    draw = [Example(t, i % 2 == 0) for i, t in enumerate(TEXTS)]
    cfs = more_counterfactuals(cod_cfs, sentiment, m=4, seed=0)
    paper = build_training_set(DistillConfig(cod=True, k=4), draw, cfs)
    assert paper.real_examples == 2 and paper.counterfactuals_used <= 2
    for m in (1, 2, 4):
        ts = build_training_set(DistillConfig(cod=True, k=4, cod_per_example=m), draw, cfs)
        per = {c.text: min(m, len({x.counterfactual for x in cfs if x.text == c.text and x.flipped})) for c in cod_cfs}
        assert ts.real_examples == 4 and ts.counterfactuals_used == sum(per.values())
        assert len(ts.items) == 4 + ts.counterfactuals_used


def test_augment_keeps_unflipped_edits_labelled_by_the_teacher(sentiment, cod_cfs):
    draw = [Example(t, i % 2 == 0) for i, t in enumerate(TEXTS)]
    edits = augment_edits(cod_cfs[:2], sentiment, seed=3)
    config = SweepConfig(methods=("kd", "kd+augment"), ks=(4,)).distill_config("kd+augment", 4, 0)
    assert config.cod and config.keep_unflipped
    ts = build_training_set(config, draw, edits)
    assert ts.counterfactuals_used == len(edits) and ts.counterfactuals_dropped == 0
    labels = {it.example.text: it.example.label for it in ts.items if it.is_counterfactual}
    assert all(labels[e.counterfactual] == e.teacher_label for e in edits)


def test_sweep_methods_name_their_scheme():
    assert method_scheme("kd") == ("kd", "", 0) and method_scheme("kd+cod") == ("kd", "cod", 0)
    assert method_scheme("kd+augment") == ("kd", "augment", 0) and method_scheme("kd+cod-m4") == ("kd", "cod-m", 4)
    cell = SweepConfig(methods=("kd+cod-m2",)).distill_config("kd+cod-m2", 8, 1)
    assert cell.cod and cell.cod_per_example == 2 and not cell.keep_unflipped and cell.label == "kd+cod-m2"
