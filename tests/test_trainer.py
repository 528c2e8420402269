"""The trainer's parts on their own: one training step per method, checkpoint selection modes, patience."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cod.config import DistillConfig
from cod.data.readers import Example
from cod.distill.batching import make_collate
from cod.distill.losses import OBJECTIVES, kd_loss
from cod.distill.student import StudentRunner
from cod.distill.trainer import distill, training_step
from cod.errors import DistillError
from tests.test_distill import _cfg, _teacher, _texts


def _step_setup(tiny_student, method: str, token_level: bool):
    """A tiny student, a batch of four texts with made-up teacher targets, an optimizer, an accelerator."""
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_student)
    tokenizer = AutoTokenizer.from_pretrained(tiny_student)
    texts = ["the film was good .", "the plot was dull .", "it is not good .", "a very boring movie"]
    enc = tokenizer(texts, truncation=True, max_length=16)
    logits = [np.array([1.0, -1.0], dtype=np.float32) * (1 if i % 2 else -1) for i in range(4)]
    layers = model.config.num_hidden_layers if method == "lwd" else 0
    states = None
    if layers:  # teacher width 8: (n_tok, 8) per layer token-level, (8,) pooled
        states = [
            [torch.randn(len(ids), 8) if token_level else torch.randn(8) for _ in range(layers)]
            for ids in enc["input_ids"]
        ]
    objective = OBJECTIVES[method]
    collate = make_collate(
        tokenizer,
        dict(enc),
        [0, 1, 0, 1],
        [1.0, 1.0, 1.0, 0.0],
        logits if objective.teacher_logits else None,
        states,
        token_level,
    )
    runner = StudentRunner(model, layers, model.config.hidden_size, 8, token_level=token_level)
    optimizer = torch.optim.AdamW(runner.parameters(), lr=1e-2)
    return runner, collate([0, 1, 2, 3]), objective, optimizer, Accelerator(cpu=True)


@pytest.mark.parametrize(
    ("method", "token_level", "terms"),
    [
        ("ce", False, {"loss", "ce"}),
        ("kd", False, {"loss", "ce", "kd"}),
        ("lwd", False, {"loss", "ce", "kd", "lwd"}),
        ("lwd", True, {"loss", "ce", "kd", "lwd"}),
    ],
)
def test_one_training_step_per_method(tiny_student, method, token_level, terms):
    runner, batch, objective, optimizer, accelerator = _step_setup(tiny_student, method, token_level)
    config = DistillConfig(method=method, alpha=3.0, beta=0.5, temperature=2.0)
    before = {n: p.detach().clone() for n, p in runner.named_parameters()}
    with torch.no_grad():
        logits, _ = runner(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))

    losses = training_step(runner, batch, objective, config, optimizer, accelerator)

    assert set(losses) == terms and all(np.isfinite(v) for v in losses.values())
    expected = losses["ce"] + 3.0 * losses.get("kd", 0.0) + 0.5 * losses.get("lwd", 0.0)  # the method's weighting
    assert losses["loss"] == pytest.approx(expected, rel=1e-5)
    if "kd" in terms:  # the KD term is the pure loss on the step's own logits
        assert losses["kd"] == pytest.approx(kd_loss(logits, batch["teacher_logits"], 2.0).item(), rel=1e-4)
    changed = [n for n, p in runner.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("student.") for n in changed)
    assert any(n.startswith("projections.") for n in changed) == (method == "lwd")


def test_selection_modes_record_what_chose_the_checkpoint(tiny_classifier, tiny_student, tmp_path):
    teacher, train = _teacher(tiny_classifier), _texts(8, 0)
    cfg = _cfg(epochs=1, evaluations=2)
    pool = [e.text for e in _texts(12, 1)]

    by_validation = distill(cfg, teacher, str(tiny_student), train, None, _texts(12, 1), out_dir=tmp_path / "v")
    m = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert (m["selection"], m["validation_size"], m["unlabelled_size"]) == ("validation", 12, 0)
    low, high = m["student_validation_accuracy_ci95"]
    assert low <= m["student_validation_accuracy"] <= high and high - low > 0.2  # 12 texts: a wide interval
    assert by_validation.metrics == {**m, **{k: by_validation.metrics[k] for k in m if isinstance(m[k], list)}}

    # Unlabelled texts: agreement with the teacher's argmax, gold labels never read (texts only).
    events = []
    by_agreement = distill(cfg, teacher, str(tiny_student), train, None, None, unlabelled=pool, on_event=events.append)
    m = by_agreement.metrics
    assert (m["selection"], m["validation_size"], m["unlabelled_size"]) == ("teacher_agreement", 0, 12)
    evals = [e.metrics for e in events if e.kind == "eval"]
    assert evals and all("agreement_accuracy" in e and "val_accuracy" not in e for e in evals)
    assert m["student_teacher_agreement"] == max(e["agreement_accuracy"] for e in evals)
    assert m["student_validation_accuracy"] is None

    last = distill(cfg, teacher, str(tiny_student), train, None, None)
    assert (last.metrics["selection"], last.metrics["best_step"]) == ("last_step", last.metrics["steps"])
    assert not [e for e in last.history if e.kind == "eval"]  # nothing to evaluate on: a fixed schedule


def test_nothing_is_selected_on_a_training_example(tiny_classifier, tiny_student):
    teacher, train = _teacher(tiny_classifier), _texts(8, 0)
    validation = _texts(6, 1) + train[:3]  # three held-out rows that are training rows
    res = distill(_cfg(epochs=1, evaluations=1), teacher, str(tiny_student), train, None, validation)
    assert res.metrics["validation_size"] == 6 and res.metrics["held_out_training_overlap_dropped"] == 3
    res = distill(
        _cfg(epochs=1, evaluations=1),
        teacher,
        str(tiny_student),
        train,
        None,
        None,
        unlabelled=[e.text for e in train] + ["a brand new text ."],
    )
    assert res.metrics["unlabelled_size"] == 1 and res.metrics["held_out_training_overlap_dropped"] == 8
    with pytest.raises(DistillError, match="also a training text"):
        distill(_cfg(epochs=1), teacher, str(tiny_student), train, None, train[:4])


def test_patience_stops_after_evaluations_without_improvement(tiny_classifier, tiny_student):
    # A learning rate too small to change any prediction: the first evaluation is the best, the next ones are not.
    cfg = _cfg(epochs=10, batch_size=2, eval_every=2, learning_rate=1e-12, patience=2)  # 40 steps planned
    res = distill(cfg, _teacher(tiny_classifier), str(tiny_student), _texts(8, 0), None, _texts(12, 1))
    evals = [e.step for e in res.history if e.kind == "eval"]
    assert evals == [2, 4, 6] and res.metrics["early_stopped"] and res.metrics["steps"] == 6
    assert res.metrics["best_step"] == 2 and res.metrics["total_steps"] == 40
    off = distill(
        cfg.replace(patience=0, epochs=2),
        _teacher(tiny_classifier),
        str(tiny_student),
        _texts(8, 0),
        None,
        _texts(12, 1),
    )
    assert not off.metrics["early_stopped"] and off.metrics["steps"] == 8


def test_unlabelled_selection_needs_a_teacher(tiny_student):
    with pytest.raises(DistillError, match="needs a teacher"):
        distill(
            _cfg(method="ce", epochs=1),
            None,
            str(tiny_student),
            _texts(8, 0),
            None,
            None,
            label_names=["negative", "positive"],
            unlabelled=["a new text ."],
        )


def test_wilson_interval_known_values():
    from cod.eval.stats import wilson_interval

    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert np.isnan(wilson_interval(0, 0)[0])
    assert wilson_interval(12, 12)[1] == 1.0 and wilson_interval(12, 12)[0] < 1.0


def test_example_type_is_used_for_labels():
    # Guards the held-out builder against labels given as numpy integers (what readers produce).
    from cod.distill.selection import held_out

    held = held_out([Example("x", np.int64(1))], None, None, ["y"])
    assert held.labels.tolist() == [1] and held.mode == "validation"
