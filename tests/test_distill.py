"""The distillation engine on tiny models (seconds each): pairing, teacher caching, labels, selection, stop, resume."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from cod.config import DistillConfig
from cod.counterfactuals.base import Counterfactual
from cod.data.readers import Example
from cod.distill.batching import PairBatchSampler, uniform_layer_map
from cod.distill.trainer import DistillEvent, build_training_set, distill
from cod.errors import ConfigError, DistillError
from tests.tiny import WORDS, make_tiny_classifier

POS = ["good", "great", "fun", "lovely", "brilliant", "moving", "best", "enjoyable", "charming"]
NEG = ["bad", "awful", "boring", "dull", "terrible", "worst", "tedious", "bland", "mess"]


def _texts(n: int, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2  # interleaved classes, like sample_few_shot
        word = (POS if label else NEG)[rng.integers(len(POS))]
        subject = ["the film", "this movie", "the plot", "the acting", "that story"][rng.integers(5)]
        out.append(Example(f"{subject} was {'very ' * int(rng.integers(3))}{word} .", label))
    return out


def _teacher(path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    return Teacher(
        AutoModelForSequenceClassification.from_pretrained(path),
        AutoTokenizer.from_pretrained(path),
        name="tiny-teacher",
    )


def _counterfactuals(teacher, examples, flip: bool = True) -> list[Counterfactual]:
    """One counterfactual per example; `flip` picks the target so the teacher's verdict is flipped (or not)."""
    cfs = []
    for ex in examples:
        words = ex.text.split()
        cf_text = " ".join("not " + w if w in POS + NEG else w for w in words)
        probs = teacher.predict_proba([ex.text, cf_text])
        cf_pred = int(probs[1].argmax())
        target = cf_pred if flip else 1 - cf_pred
        cfs.append(Counterfactual(ex.text, ex.label, probs[0].tolist(), cf_text, target, probs[1].tolist(), "test"))
    return cfs


def _cfg(**kw) -> DistillConfig:
    base = dict(k=8, epochs=2, batch_size=4, learning_rate=1e-3, warmup_ratio=0.0, max_length=32, evaluations=3)
    base.update(kw)
    return DistillConfig(**base)


@pytest.fixture(scope="module")
def data():
    return {"train": _texts(8, 0), "validation": _texts(12, 1), "test": _texts(12, 2)}


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- training set and batches


def test_pair_sampler_keeps_pairs_together_every_epoch():
    pair_ids = [0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5]
    sampler = PairBatchSampler(pair_ids, batch_size=3, seed=7)
    orders = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(pair_ids)))
        assert all(len(b) <= 3 for b in batches)
        for pid in set(pair_ids):
            members = [i for i, p in enumerate(pair_ids) if p == pid]
            assert sum(any(m in b for m in members) for b in batches) == 1, f"pair {pid} split"
        orders.append(batches)
    assert orders[0] != orders[1]  # reshuffled per epoch
    sampler.set_epoch(1)
    assert list(sampler) == orders[1]  # and repeatable, so a resumed run sees the same batches


def test_pairs_stay_together_through_accelerate_loader():
    from accelerate import Accelerator

    sampler = PairBatchSampler([0, 0, 1, 1, 2, 2, 3, 3], batch_size=4, seed=0)
    loader = torch.utils.data.DataLoader(list(range(8)), batch_sampler=sampler, collate_fn=torch.tensor)
    loader = Accelerator().prepare(loader)
    for epoch in range(2):
        loader.set_epoch(epoch)
        for batch in loader:
            ids = set(batch.tolist())
            assert all(i ^ 1 in ids for i in ids), f"a pair was split: {sorted(ids)}"


def test_cod_training_set_uses_real_half_and_teacher_labels(tiny_classifier, data):
    teacher = _teacher(tiny_classifier)
    cfs = _counterfactuals(teacher, data["train"][:4])
    ts = build_training_set(_cfg(cod=True), data["train"], cfs)
    real = [it for it in ts.items if not it.is_counterfactual]
    assert [it.example for it in real] == data["train"][:4]  # the first k/2 of the same draw
    for it in ts.items:
        if it.is_counterfactual:
            cf = next(c for c in cfs if c.counterfactual == it.example.text)
            assert it.example.label == cf.teacher_label  # CE label of a counterfactual: the teacher's argmax
            assert it.pair_id == data["train"].index(next(e for e in data["train"] if e.text == cf.text))
    assert ts.counts()["counterfactuals_used"] == 4 and ts.counts()["train_examples"] == 8
    baseline = build_training_set(_cfg(), data["train"], None)
    assert [it.example for it in baseline.items] == data["train"]  # the baseline: k real from the same draw


def test_unflipped_counterfactuals_dropped_or_kept_and_counted(tiny_classifier, data):
    teacher = _teacher(tiny_classifier)
    cfs = _counterfactuals(teacher, data["train"][:2]) + _counterfactuals(teacher, data["train"][2:4], flip=False)
    dropped = build_training_set(_cfg(cod=True), data["train"], cfs)
    assert dropped.counterfactuals_unflipped == 2 and dropped.counterfactuals_dropped == 2
    assert dropped.counterfactuals_used == 2 and len(dropped.items) == 6
    kept = build_training_set(_cfg(cod=True, keep_unflipped=True), data["train"], cfs)
    assert kept.counterfactuals_unflipped == 2 and kept.counterfactuals_dropped == 0 and len(kept.items) == 8


def test_cod_without_matching_counterfactuals_is_a_clear_error(data):
    with pytest.raises(DistillError, match="counterfactuals"):
        build_training_set(_cfg(cod=True), data["train"], [])


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="method 'xx'"):
        DistillConfig(method="xx")
    with pytest.raises(ConfigError, match="even"):
        DistillConfig(cod=True, k=7)
    with pytest.raises(ConfigError, match="selection_metric"):
        DistillConfig(selection_metric="test_accuracy")
    with pytest.raises(ConfigError, match="max_steps must be 0"):
        DistillConfig(max_steps=-1)


def test_uniform_layer_map():
    assert uniform_layer_map(6, 12) == [2, 4, 6, 8, 10, 12]
    assert uniform_layer_map(2, 2) == [1, 2]
    assert uniform_layer_map(4, 2) == [1, 1, 2, 2]


# ----------------------------------------------------------------------------- runs


def test_teacher_runs_once_per_unique_text_and_cf_labels(tiny_classifier, tiny_student, data, tmp_path):
    teacher = _teacher(tiny_classifier)
    cfs = _counterfactuals(teacher, data["train"][:4])
    fresh = _teacher(tiny_classifier)  # an empty cache: every forward is counted
    res = distill(
        _cfg(cod=True, epochs=3),
        fresh,
        str(tiny_student),
        data["train"],
        cfs,
        data["validation"],
        out_dir=tmp_path / "run",
    )
    m = res.metrics
    assert m["unique_train_texts"] == 8 and m["train_examples"] == 8 and m["counterfactuals_used"] == 4
    assert m["teacher_train_forward_passes"] == 8  # once per unique text, not per epoch (3 epochs ran)
    assert fresh.forward_passes == 8 + len(data["validation"])  # + one pass per validation text for its metrics
    rows = [json.loads(line) for line in (tmp_path / "run" / "train_set.jsonl").read_text().splitlines()]
    for row in rows:
        if row["is_counterfactual"]:
            assert row["ce_label"] == max(row["teacher_probs"], key=row["teacher_probs"].get)
            assert row["original"] in [e.text for e in data["train"][:4]]


def test_ce_can_be_dropped_on_counterfactuals(tiny_classifier, tiny_student, data, tmp_path):
    teacher = _teacher(tiny_classifier)
    cfs = _counterfactuals(teacher, data["train"][:4])
    distill(
        _cfg(cod=True, epochs=1, ce_on_counterfactuals=False),
        teacher,
        str(tiny_student),
        data["train"],
        cfs,
        data["validation"],
        out_dir=tmp_path,
    )
    rows = [json.loads(line) for line in (tmp_path / "train_set.jsonl").read_text().splitlines()]
    assert {r["ce_weight"] for r in rows if r["is_counterfactual"]} == {0.0}
    assert {r["ce_weight"] for r in rows if not r["is_counterfactual"]} == {1.0}


def test_selection_uses_validation_only_and_events(tiny_classifier, tiny_student, data):
    teacher = _teacher(tiny_classifier)
    events: list[DistillEvent] = []
    cfg = _cfg(epochs=4, batch_size=2, eval_every=3, patience=0)  # the whole schedule: no early stop
    res = distill(cfg, teacher, str(tiny_student), data["train"], None, data["validation"], on_event=events.append)
    steps = [e for e in events if e.kind == "step"]
    evals = [e for e in events if e.kind == "eval"]
    assert [e.step for e in steps] == list(range(1, 17)) and all(e.total == 16 for e in steps)
    assert all({"loss", "ce", "kd"} <= set(e.losses) and e.eta_s is not None for e in steps)
    assert [e.step for e in evals] == [3, 6, 9, 12, 15, 16]
    best = max(evals, key=lambda e: e.metrics["val_accuracy"])  # first of the maxima
    assert res.metrics["best_step"] == best.step
    assert res.metrics["student_validation_accuracy"] == best.metrics["val_accuracy"]
    assert events[-1].kind == "done"
    # A test split with inverted labels changes nothing that was chosen: it is only evaluated.
    flipped_test = [Example(e.text, 1 - e.label) for e in data["validation"]]
    res2 = distill(
        cfg, _teacher(tiny_classifier), str(tiny_student), data["train"], None, data["validation"], test=flipped_test
    )
    assert res2.metrics["best_step"] == res.metrics["best_step"]
    assert _same(_weights(res.model), _weights(res2.model))
    assert res2.metrics["student_test_accuracy"] == pytest.approx(1 - res.metrics["student_validation_accuracy"])


def test_stop_ends_cleanly_with_best_saved(tiny_classifier, tiny_student, data, tmp_path):
    stop = threading.Event()
    events = []

    def on_event(e):
        events.append(e)
        if e.kind == "step" and e.step == 3:
            stop.set()

    res = distill(
        _cfg(epochs=10),
        _teacher(tiny_classifier),
        str(tiny_student),
        data["train"],
        None,
        data["validation"],
        on_event=on_event,
        stop=stop,
        out_dir=tmp_path,
    )
    assert events[-1].kind == "stopped" and res.metrics["stopped"] and res.metrics["steps"] == 3
    assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "checkpoint" / "best.pt").exists()
    assert any(e.kind == "eval" and e.step == 3 for e in events)  # the state at stop was evaluated for selection


def test_crashed_run_resumes_to_the_same_result(tiny_classifier, tiny_student, data, tmp_path):
    cfg = _cfg(epochs=3, batch_size=2, eval_every=2, patience=0)  # 12 steps, checkpoints every 2
    full = distill(cfg, _teacher(tiny_classifier), str(tiny_student), data["train"], None, data["validation"])

    def crash(e):
        if e.kind == "step" and e.step == 7:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        distill(
            cfg,
            _teacher(tiny_classifier),
            str(tiny_student),
            data["train"],
            None,
            data["validation"],
            on_event=crash,
            out_dir=tmp_path,
        )
    assert (tmp_path / "checkpoint" / "last.pt").exists()
    resumed = distill(
        cfg, _teacher(tiny_classifier), str(tiny_student), data["train"], None, data["validation"], out_dir=tmp_path
    )
    assert resumed.metrics["resumed_from_step"] == 6 and resumed.metrics["steps"] == 12
    assert _same(_weights(full.model), _weights(resumed.model))
    assert resumed.metrics["best_step"] == full.metrics["best_step"]
    assert not (tmp_path / "checkpoint").exists()  # a finished run drops its checkpoint
    with pytest.raises(DistillError, match="different run"):  # another run's checkpoint is never mixed in
        (tmp_path / "checkpoint").mkdir()
        import shutil

        torch.save({"fingerprint": "other"}, tmp_path / "checkpoint" / "last.pt")
        distill(
            cfg.replace(seed=1),
            _teacher(tiny_classifier),
            str(tiny_student),
            data["train"],
            None,
            data["validation"],
            out_dir=tmp_path,
        )
        shutil.rmtree(tmp_path / "checkpoint")


def test_output_folder_contents_and_reload(tiny_classifier, tiny_student, data, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher = _teacher(tiny_classifier)
    cfs = _counterfactuals(teacher, data["train"][:4])
    res = distill(
        _cfg(cod=True),
        teacher,
        str(tiny_student),
        data["train"],
        cfs,
        data["validation"],
        out_dir=tmp_path,
        test=data["test"],
        run_info={"data": "tiny"},
    )
    for name in (
        "config.json",
        "metrics.json",
        "train_set.jsonl",
        "README.md",
        "model/config.json",
        "model/README.md",
    ):
        assert (tmp_path / name).exists(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "student_test_accuracy",
        "teacher_test_accuracy",
        "teacher_train_forward_passes",
        "unique_train_texts",
        "train_examples",
        "counterfactuals_used",
        "wall_seconds",
    ):
        assert metrics[key] is not None, key
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["distill"]["cod"] is True and config["data"] == "tiny" and config["teacher"] == "tiny-teacher"
    card = (tmp_path / "README.md").read_text()
    assert "kd+cod" in card and "k = 8" in card and "student test accuracy" in card
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert model.config.id2label == {0: "negative", 1: "positive"}
    enc = tok([e.text for e in data["test"]], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = res.model(**enc).logits
        reloaded = model.eval()(**enc).logits
    assert torch.allclose(ours, reloaded, atol=1e-5)


def test_lora_student_is_merged_on_export(tiny_classifier, tiny_student, data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    res = distill(
        _cfg(lora=True, lora_r=2),
        _teacher(tiny_classifier),
        str(tiny_student),
        data["train"],
        None,
        data["validation"],
        out_dir=tmp_path,
    )
    full = distill(
        _cfg(epochs=1), _teacher(tiny_classifier), str(tiny_student), data["train"], None, data["validation"]
    )
    assert 0 < res.metrics["trainable_params"] < full.metrics["trainable_params"]
    assert not hasattr(res.model, "peft_config") and type(res.model).__name__ == "BertForSequenceClassification"
    assert not any("lora" in k for k in res.model.state_dict())
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert not any("lora" in k for k in reloaded.state_dict())


def test_lwd_token_level_with_shared_tokenizer_pooled_otherwise(tiny_classifier, tiny_student, data, tmp_path):
    teacher = _teacher(tiny_classifier)
    res = distill(_cfg(method="lwd", epochs=1), teacher, str(tiny_student), data["train"], None, data["validation"])
    assert res.metrics["lwd_mode"] == "token" and res.metrics["lwd_teacher_layers"] == [2]
    assert all("lwd" in e.losses for e in res.history if e.kind == "step")
    other = make_tiny_classifier(tmp_path / "other-vocab", hidden=24, layers=3, words=list(WORDS) + ["extra", "words"])
    res2 = distill(_cfg(method="lwd", epochs=1), teacher, str(other), data["train"], None, data["validation"])
    assert res2.metrics["lwd_mode"] == "pooled" and res2.metrics["lwd_teacher_layers"] == [1, 1, 2]
    assert res2.metrics["teacher_train_forward_passes"] == 8


def test_three_labels(tiny_classifier_3way, data):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    teacher = Teacher(
        AutoModelForSequenceClassification.from_pretrained(tiny_classifier_3way),
        AutoTokenizer.from_pretrained(tiny_classifier_3way),
    )
    train = [
        Example(t, i % 3) for i, t in enumerate(["sports game team", "politics vote law", "tech computer phone"] * 3)
    ]
    val = [Example(t, i % 3) for i, t in enumerate(["the game team", "the vote law", "the computer phone"] * 2)]
    cfs = _counterfactuals(teacher, [train[0]])  # one pair is enough to exercise CoD with 3 labels
    res = distill(
        _cfg(method="kd", k=6, cod=True, epochs=2), teacher, str(tiny_classifier_3way), train[:6], cfs, val, test=val
    )
    assert res.model.config.num_labels == 3 and set(res.model.config.id2label.values()) == {
        "sports",
        "politics",
        "tech",
    }
    assert "val_share_tech" in next(e for e in res.history if e.kind == "eval").metrics
    assert 0 <= res.metrics["student_test_accuracy"] <= 1


def test_ce_method_needs_no_teacher_forwards(tiny_classifier, tiny_student, data):
    teacher = _teacher(tiny_classifier)
    res = distill(
        _cfg(method="ce"), teacher, str(tiny_student), data["train"], None, [], label_names=["negative", "positive"]
    )
    assert res.metrics["teacher_train_forward_passes"] == 0 and teacher.forward_passes == 0
    assert res.metrics["selection"] == "last_step"


@pytest.mark.parametrize("max_steps", [3, 7])
def test_max_steps_overrides_epochs(tiny_classifier, tiny_student, data, max_steps):
    # 8 examples / batch 4 = 2 steps per epoch; 2 epochs would be 4 steps: max_steps wins, mid-epoch or beyond.
    res = distill(
        _cfg(method="ce", max_steps=max_steps),
        None,
        str(tiny_student),
        data["train"],
        None,
        data["validation"],
        label_names=["negative", "positive"],
    )
    assert res.metrics["steps"] == res.metrics["total_steps"] == max_steps
    assert res.metrics["epochs_run"] == max_steps / 2
    assert [e.step for e in res.history if e.kind == "step"] == list(range(1, max_steps + 1))


def test_mean_pooling_head_student_round_trips(tiny_classifier, tiny_student, data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from cod.modeling.heads import register

    register()
    res = distill(
        _cfg(head="mean", epochs=1),
        _teacher(tiny_classifier),
        str(tiny_student),
        data["train"],
        None,
        data["validation"],
        out_dir=tmp_path,
    )
    assert res.metrics["head"] == "mean"
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert type(reloaded).__name__ == "MeanPoolingForSequenceClassification"


def test_label_mismatch_is_a_clear_error(tiny_classifier_3way, tiny_student, data):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.scoring import Teacher

    teacher = Teacher(
        AutoModelForSequenceClassification.from_pretrained(tiny_classifier_3way),
        AutoTokenizer.from_pretrained(tiny_classifier_3way),
    )
    with pytest.raises(DistillError, match="3 labels"):
        distill(
            _cfg(),
            teacher,
            str(tiny_student),
            data["train"],
            None,
            data["validation"],
            label_names=["negative", "positive"],
        )


_TRACKED_RUN = """
import json, sys
from cod.distill.trainer import distill
from tests.test_distill import _cfg, _teacher, _texts
teacher, student = sys.argv[1:3]
distill(_cfg(tracker="trackio", seed=3), _teacher(teacher), student, _texts(8, 0), None, _texts(12, 1),
        label_names=["negative", "positive"])
from trackio.sqlite_storage import SQLiteStorage
runs = SQLiteStorage.get_runs("cod-studio")
print(json.dumps({"runs": runs, "logs": SQLiteStorage.get_logs("cod-studio", run=runs[0])}, default=str))
"""


def test_trackio_tracker_logs_steps_and_validation_locally(tiny_classifier, tiny_student, tmp_path):
    # trackio reads its folder at import: a fresh interpreter with TRACKIO_DIR in a temporary folder (nothing online).
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("trackio")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", _TRACKED_RUN, str(tiny_classifier), str(tiny_student)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"runs"')))
    assert len(out["runs"]) == 1
    logs = out["logs"]
    steps = [row for row in logs if "train/loss" in row]
    evals = [row for row in logs if "val_accuracy" in row]
    assert [row["step"] for row in steps] == [1, 2, 3, 4]  # 8 examples / batch 4 x 2 epochs
    assert all(row["train/kd"] >= 0 for row in steps) and 1 <= len(evals) <= 4
    assert all(0 <= row["val_accuracy"] <= 1 for row in evals)
    assert any(p.suffix == ".db" for p in (tmp_path / "trackio").rglob("*"))
