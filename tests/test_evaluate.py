import numpy as np
import pytest
from sklearn.metrics import f1_score

from cod.data.readers import Example
from cod.errors import ModelError
from cod.eval.metrics import (
    StudentScorer,
    accuracy,
    agreement,
    as_scorer,
    evaluate,
    evaluation_table,
    expected_calibration_error,
    macro_f1,
    mean_kl,
)


def test_accuracy_and_agreement():
    assert accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert agreement([1, 1, 0], [1, 0, 0]) == pytest.approx(2 / 3)
    assert np.isnan(accuracy([], []))


@pytest.mark.parametrize(
    "labels,preds",
    [
        ([0, 1, 1, 0, 1], [0, 1, 0, 0, 0]),
        ([0, 0, 0, 0], [0, 0, 1, 1]),
        ([0, 1, 2, 2, 1], [0, 2, 2, 1, 1]),
        ([1, 1], [1, 1]),
    ],
)
def test_macro_f1_matches_scikit_learn(labels, preds):
    assert macro_f1(labels, preds) == pytest.approx(f1_score(labels, preds, average="macro"))


def test_mean_kl_identities():
    p = np.array([[0.9, 0.1], [0.3, 0.7]])
    q = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert mean_kl(p, p) == pytest.approx(0.0, abs=1e-9)
    expected = np.mean(
        [0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5), 0.3 * np.log(0.3 / 0.5) + 0.7 * np.log(0.7 / 0.5)]
    )
    assert mean_kl(p, q) == pytest.approx(expected)
    assert mean_kl(p, q) > 0 and mean_kl(q, p) != pytest.approx(mean_kl(p, q))
    assert np.isfinite(mean_kl(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])))


def test_ece_known_values():
    # Perfectly calibrated: confidence 0.8 with 80% right.
    probs = np.array([[0.8, 0.2]] * 5)
    labels = [0, 0, 0, 0, 1]
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    # Over-confident: confidence 1.0, half right -> 0.5.
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, [0, 0]) == pytest.approx(0.5)
    # Two bins: {0.6 conf, right} and {0.9 conf, wrong}: 0.5*0.4 + 0.5*0.9.
    probs = np.array([[0.6, 0.4], [0.1, 0.9]])
    assert expected_calibration_error(probs, [0, 0]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.9)


def _rule(texts):
    """A rule-based scorer: 'good' means positive."""
    return np.array([[0.2, 0.8] if "good" in t else [0.7, 0.3] for t in texts])


def test_evaluate_with_function_scorers_reports_both_models_and_collapse():
    examples = [Example("good film", 1), Example("bad film", 0), Example("good but bad", 0), Example("fun", 1)]
    always_negative = lambda texts: np.tile([0.9, 0.1], (len(texts), 1))  # noqa: E731
    m = evaluate(_rule, always_negative, examples, ["negative", "positive"])
    assert m["n"] == 4
    assert m["teacher_accuracy"] == 0.5
    assert m["student_accuracy"] == 0.5
    assert m["agreement"] == 0.5
    assert m["student_share_negative"] == 1.0 and m["student_share_positive"] == 0.0
    assert m["mean_kl"] > 0
    table = evaluation_table(m)
    assert list(table["model"]) == ["teacher", "student"]
    assert table.loc[1, "agreement_with_teacher"] == 0.5


def test_evaluate_rejects_probabilities_of_the_wrong_shape():
    three = lambda texts: np.full((len(texts), 3), 1 / 3)  # noqa: E731
    with pytest.raises(ModelError, match="3 labels|shape"):
        evaluate(_rule, three, [Example("good", 1)], ["negative", "positive"])
    with pytest.raises(ModelError, match="Cannot score"):
        as_scorer(42)


def test_student_scorer_on_a_tiny_model_matches_a_direct_forward(tiny_classifier):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier)
    model.train()  # the scorer must evaluate in eval mode and give the mode back
    scorer = as_scorer((model, tokenizer))
    assert isinstance(scorer, StudentScorer)
    texts = ["a good film", "the plot is dull and the acting is bad", "fun"]
    probs = scorer.predict_proba(texts)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1)
    assert model.training
    model.eval()
    with torch.no_grad():
        enc = tokenizer(texts[1:2], return_tensors="pt")
        direct = torch.softmax(model(**enc).logits, dim=-1).numpy()
    assert np.allclose(probs[1], direct[0], atol=1e-5)
    m = evaluate(
        scorer, (model, tokenizer), [Example(t, i % 2) for i, t in enumerate(texts)], ["negative", "positive"]
    )
    assert m["agreement"] == 1.0 and m["mean_kl"] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_command_writes_metrics_and_figures(tiny_classifier, tiny_student, tmp_path, capsys):
    import json

    from cod.cli import main
    from cod.counterfactuals.base import Counterfactual
    from cod.data.tasks import load_task

    test = load_task("demo").test[:3]
    probes = tmp_path / "probes.jsonl"
    records = [
        Counterfactual(
            e.text, e.label, [0.5, 0.5], "the film was good . " + e.text, 1, [0.4, 0.6], proposer="human"
        ).to_record(["negative", "positive"])
        for e in test
    ]
    probes.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--model",
        str(tiny_student),
        "--teacher",
        str(tiny_classifier),
        "--task",
        "demo",
        "--limit",
        "20",
        "--probes",
        str(probes),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "teacher" in printed and "student" in printed and "3 probe pairs" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 20 and metrics["probe_pairs"] == 3 and 0 <= metrics["agreement"] <= 1
    for name in ("edit_paths.html", "edit_paths.json", "boundary.html", "boundary.json"):
        assert (out / name).exists(), name
    # Probe pairs made from training examples are refused.
    train = load_task("demo").train[0]
    rec = Counterfactual(train.text, train.label, [0.5, 0.5], train.text + " good", 1, [0.4, 0.6], proposer="human")
    probes.write_text(json.dumps(rec.to_record(["negative", "positive"])) + "\n")
    assert main(argv) == 2 and "training examples" in capsys.readouterr().err
