"""A cheap guide teacher searches, the real (expensive) teacher checks: tiny word-driven classifiers as both."""

import json

import numpy as np
import pytest

from cod.config import LexicalConfig
from cod.counterfactuals import make_proposer, propose
from cod.counterfactuals.base import read_counterfactuals, write_counterfactuals
from cod.counterfactuals.guided import guide_confirmation
from cod.data.readers import Example
from cod.errors import ConfigError
from tests.tiny import NEGATIVE, POSITIVE, make_word_classifier

TEXTS = ["the film was good .", "it was a great story", "the acting was brilliant !"]
NO_FLUENCY = LexicalConfig(fluency_model="")


def _teacher(path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    model = AutoModelForSequenceClassification.from_pretrained(path)
    return Teacher(model, AutoTokenizer.from_pretrained(path), name=str(path))  # the name is the folder


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """Positive words push 'positive', negative words and 'not' push 'negative'."""
    return _teacher(make_word_classifier(tmp_path_factory.mktemp("guide")))


@pytest.fixture(scope="module")
def agreeing(tmp_path_factory):
    """The guide's weights at another scale: the same verdicts, other probabilities."""
    return _teacher(make_word_classifier(tmp_path_factory.mktemp("agreeing"), gain=3.0))


@pytest.fixture(scope="module")
def deaf(tmp_path_factory):
    """Knows only positive words: no edit the guide makes towards 'negative' can flip it (ties are no flip)."""
    weights = {w: (-1.5, 1.5) for w in POSITIVE}
    return _teacher(make_word_classifier(tmp_path_factory.mktemp("deaf"), weights=weights))


def _guided(examples, teacher, guide, **kw):
    proposer = make_proposer("lexical", NO_FLUENCY, cache_dir=False, guide=guide)
    return proposer.propose(examples, teacher, **kw)


def test_the_teacher_scores_every_result_once_and_its_verdict_counts(guide, agreeing):
    passes = agreeing.forward_passes
    cfs = _guided([Example(t, 1) for t in TEXTS], agreeing, guide)
    assert agreeing.forward_passes - passes <= 2 * len(TEXTS)  # originals + one counterfactual each, no search
    unguided = propose([Example(t, 1) for t in TEXTS], guide, config=NO_FLUENCY, cache_dir=False)
    assert sum(c.attempts for c in unguided) > 2 * len(TEXTS)  # what the guide's search cost instead
    for cf in cfs:
        assert cf.counterfactual and not cf.error
        np.testing.assert_allclose(cf.counterfactual_teacher_probs, agreeing.predict_proba([cf.counterfactual])[0])
        np.testing.assert_allclose(cf.teacher_probs, agreeing.predict_proba([cf.text])[0])
        guide_said = guide.predict_proba([cf.counterfactual])[0]
        np.testing.assert_allclose(cf.extra["guide"]["probs"], guide_said, rtol=1e-5)
        assert cf.extra["guide"]["flipped"] and cf.flipped  # the same verdicts: every flip confirmed
        assert cf.attempts == 1 and "alternatives" not in cf.extra  # the guide's other flips were never checked
    records = [c.to_record(agreeing.label_names) for c in cfs]
    assert guide_confirmation(records) == {
        "guide": guide.name,
        "searched": 3,
        "guide_flipped": 3,
        "teacher_confirmed": 3,
        "teacher_flipped": 3,
        "unguidable": 0,
    }


def test_a_flip_the_teacher_does_not_confirm_is_unflipped_and_dropped_by_distillation(guide, deaf):
    from cod.config import DistillConfig
    from cod.distill.batching import build_training_set

    examples = [Example(t, 1) for t in TEXTS]
    cfs = _guided(examples, deaf, guide)
    assert all(c.extra["guide"]["flipped"] and not c.flipped for c in cfs)  # the guide's word, not the teacher's
    counts = guide_confirmation([c.to_record(deaf.label_names) for c in cfs])
    assert (counts["guide_flipped"], counts["teacher_confirmed"]) == (3, 0)
    config = DistillConfig(method="kd", cod=True, k=6, seed=0)
    dropped = build_training_set(config, examples + [Example("a dull mess", 0)] * 3, cfs)
    assert dropped.counterfactuals_used == 0 and dropped.counterfactuals_dropped == 3
    kept = build_training_set(config.replace(keep_unflipped=True), examples + [Example("a dull mess", 0)] * 3, cfs)
    assert [it.example.label for it in kept.items if it.is_counterfactual] == [c.teacher_label for c in cfs]


def test_targets_come_from_the_teacher_and_an_unguidable_example_says_why(guide, tmp_path):
    # A teacher that calls "dull" positive: on "a dull film" it says positive, aims for negative, which the
    # guide already predicts there: nothing to search.
    weights = {w: (-1.5, 1.5) for w in POSITIVE + ("dull",)} | {w: (1.5, -1.5) for w in NEGATIVE if w != "dull"}
    odd = _teacher(make_word_classifier(tmp_path / "odd", weights=weights))
    cf_ok, cf_odd = _guided(["the film was good .", "a dull film"], odd, guide)
    assert cf_ok.target == 0 and cf_ok.counterfactual
    assert cf_odd.target == 0 and cf_odd.label == 1 and not cf_odd.counterfactual
    assert "already predicts 'negative'" in cf_odd.error and guide.name in cf_odd.error
    assert cf_odd.teacher_probs == pytest.approx(list(odd.predict_proba(["a dull film"])[0]))
    # It is recorded like any failed example, and read back (a sweep resumes from these files).
    path = write_counterfactuals(tmp_path / "cfs.jsonl", [cf_ok, cf_odd], odd.label_names)
    back = read_counterfactuals(path, odd.label_names)
    assert [(c.counterfactual, c.error, c.counterfactual_teacher_probs) for c in back][1] == ("", cf_odd.error, [])


def test_a_guide_with_other_labels_is_refused(guide, tmp_path):
    other = _teacher(make_word_classifier(tmp_path / "other", label_names=("bad", "good")))
    with pytest.raises(ConfigError, match="same label names"):
        _guided(TEXTS[:1], other, guide)


def test_generate_cli_guided_run_reports_confirmations(cod_home, guide, deaf, tmp_path, capsys):
    from cod.cli import main

    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",positive\n' for t in TEXTS) + "a dull film,negative\n")
    out = tmp_path / "cfes.jsonl"
    args = ["generate", "--data", data, "--teacher", deaf.name, "--guide-teacher", guide.name, "--out", out]
    code = main([str(a) for a in args])
    printed, err = capsys.readouterr()
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and all(r["extra"]["guide"]["flipped"] for r in records)
    assert [r["flipped"] for r in records] == [False, False, False, True]  # "dull" -> a positive word flips it
    assert "the teacher confirmed 1 of the guide's 4 flips" in printed


def test_a_sweep_searches_with_its_guide_and_saves_it_in_the_folder(guide, tiny_student, tmp_path):
    from cod.data.readers import TaskSplits
    from cod.sweep import sweep
    from cod.sweep.grid import check_resumable
    from tests.test_sweep import _sentences, tiny_sweep_config
    from tests.word_teacher import word_teacher

    task = TaskSplits("tiny", _sentences(12, 0), _sentences(6, 1), _sentences(6, 2), ["negative", "positive"])
    teacher = word_teacher("sentiment")
    config = tiny_sweep_config(
        tmp_path,
        tiny_student,
        methods=("kd+cod",),
        figures=False,
        guide_teacher=guide.name,
        distill={"epochs": 1, "batch_size": 4, "evaluations": 1, "max_length": 16},
    )
    passes = teacher.forward_passes
    result = sweep(config, teacher=teacher, splits=task)
    assert set(result.results.status) == {"done"}
    cfs = read_counterfactuals(tmp_path / "sweep" / "counterfactuals" / "k4-s0.jsonl", task.label_names)
    assert len(cfs) == 2 and all(c.extra["guide"]["teacher"] == guide.name for c in cfs)
    for cf in cfs:  # the sweep's own teacher gave each verdict
        np.testing.assert_allclose(cf.counterfactual_teacher_probs, teacher.predict_proba([cf.counterfactual])[0])
    # Validation, test and training texts plus 2 originals and 2 counterfactuals: no search on the teacher.
    assert teacher.forward_passes - passes <= 6 + 6 + 4 + 2
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["settings"]
    assert saved["guide_teacher"] == guide.name
    with pytest.raises(ConfigError, match="guide_teacher"):
        check_resumable(config.replace(guide_teacher=""), tmp_path / "sweep")


def test_a_folder_made_before_guides_existed_resumes_unguided(tmp_path):
    from cod.config import SweepConfig
    from cod.sweep.grid import check_resumable, settings_key

    config = SweepConfig(out=str(tmp_path), ks=(8,), seeds=(0,), methods=("kd",))
    old = {k: v for k, v in settings_key(config).items() if k != "guide_teacher"}
    (tmp_path / "sweep.json").write_text(json.dumps({"settings": old, "grid": {}}))
    check_resumable(config, tmp_path)  # no error: the same settings
    with pytest.raises(ConfigError, match="guide_teacher"):
        check_resumable(config.replace(guide_teacher="demo"), tmp_path)
