import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cod.config import SweepConfig
from cod.errors import ConfigError
from cod.sweep import baseline_of, cell_name, summarise_results
from cod.sweep.grid import check_resumable

SUMMARY_COLUMNS = [
    "method",
    "k",
    "n_seeds",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "paired_diff",
    "paired_ci_low",
    "paired_ci_high",
    "seeds_won",
]


def synthetic_results():
    rng = np.random.default_rng(0)
    rows = []
    for k in (8, 16):
        for seed in range(4):
            kd = 0.55 + 0.02 * (k // 8) + 0.01 * rng.normal()
            rows.append(
                {
                    "method": "kd",
                    "k": k,
                    "seed": seed,
                    "student_accuracy": kd,
                    "status": "done",
                    "teacher_accuracy": 0.85,
                }
            )
            # CoD wins seeds 0-2 by 0.05 and loses seed 3 by 0.01.
            cod = kd + (0.05 if seed < 3 else -0.01)
            rows.append(
                {
                    "method": "kd+cod",
                    "k": k,
                    "seed": seed,
                    "student_accuracy": cod,
                    "status": "done",
                    "teacher_accuracy": 0.85,
                }
            )
    rows.append(
        {"method": "kd+cod", "k": 8, "seed": 9, "student_accuracy": 0.99, "status": "error", "teacher_accuracy": 0.85}
    )
    return pd.DataFrame(rows)


def test_summary_has_the_issue_columns_and_paired_statistics():
    summary = summarise_results(synthetic_results(), methods=["kd", "kd+cod"])
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    assert list(zip(summary.method, summary.k)) == [("kd", 8), ("kd", 16), ("kd+cod", 8), ("kd+cod", 16)]
    cod8 = summary[(summary.method == "kd+cod") & (summary.k == 8)].iloc[0]
    assert cod8.n_seeds == 4  # the failed cell (seed 9) is left out
    assert cod8.paired_diff == pytest.approx((3 * 0.05 - 0.01) / 4)
    assert cod8.seeds_won == 3 and cod8.seeds_lost == 1
    assert cod8.paired_ci_low <= cod8.paired_diff <= cod8.paired_ci_high
    assert cod8.baseline == "kd" and cod8.teacher_accuracy == 0.85
    kd8 = summary[(summary.method == "kd") & (summary.k == 8)].iloc[0]
    assert np.isnan(kd8.paired_diff) and kd8.ci_low <= kd8["mean"] <= kd8.ci_high


def test_summary_of_nothing_is_an_empty_table_with_the_columns():
    assert set(SUMMARY_COLUMNS) <= set(summarise_results(pd.DataFrame()).columns)


def test_names_and_baselines():
    assert cell_name("lwd+cod", 16, 3) == "lwd_cod-k16-s3"
    assert baseline_of("lwd+cod") == "lwd" and baseline_of("kd") is None and baseline_of("setfit") is None


def test_a_sweep_folder_refuses_other_settings_but_accepts_a_larger_grid(tmp_path):
    config = SweepConfig(out=str(tmp_path), ks=(8,), seeds=(0,), methods=("kd",), distill={"epochs": 2})
    check_resumable(config, tmp_path)
    assert json.loads((tmp_path / "sweep.json").read_text())["settings"]["distill"] == {"epochs": 2}
    check_resumable(config.replace(ks=(8, 16), seeds=(0, 1), methods=("kd", "kd+cod")), tmp_path)
    with pytest.raises(ConfigError, match="epochs.*new --out"):
        check_resumable(config.replace(distill={"epochs": 3}), tmp_path)


# ----------------------------------------------------------------------------- a real sweep on tiny models

POS, NEG = ["good", "great", "fun", "brilliant"], ["bad", "awful", "boring", "terrible"]
SWAP = dict(zip(POS, NEG)) | dict(zip(NEG, POS))


def _sentences(n, seed):
    from cod.data.readers import Example

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = rng.choice(POS if label else NEG, size=2, replace=False)
        subject = rng.choice(["film", "movie", "story", "plot", "acting"])
        out.append(Example(f"the {subject} is {words[0]} and {words[1]} {'.' if i % 3 else '!'} {i}", label))
    return out


def _pairs(examples, teacher):
    """Counterfactuals that swap every sentiment word, scored by the (real) word teacher."""
    from cod.counterfactuals.base import Counterfactual

    cfs = [" ".join(SWAP.get(w, w) for w in e.text.split()) for e in examples]
    p = teacher.predict_proba([e.text for e in examples] + cfs)
    n = len(examples)
    return [
        Counterfactual(e.text, e.label, list(p[i]), cfs[i], 1 - int(p[i].argmax()), list(p[n + i]), proposer="test")
        for i, e in enumerate(examples)
    ]


def tiny_sweep_config(tmp_path, student, **settings):
    """A one-cell sweep (k = 4, seed 0) of the tiny task into `tmp_path / "sweep"`, without probe pairs."""
    base = dict(out=str(tmp_path / "sweep"), task="tiny", student=str(student), ks=(4,), seeds=(0,), probe_pairs=0)
    return SweepConfig(**(base | settings))


@pytest.fixture(scope="module")
def tiny_task():
    from cod.data.readers import TaskSplits

    train, validation, test = _sentences(40, 0), _sentences(10, 1), _sentences(24, 2)
    test = [type(e)(e.text + " test", e.label) for e in test]  # held out: no text shared with train
    return TaskSplits("tiny", train, validation, test, ["negative", "positive"])


def test_setfit_missing_is_skipped_with_a_warning(tiny_task, tiny_student, tmp_path, monkeypatch):
    import importlib.util

    from cod.sweep import sweep
    from tests.word_teacher import word_teacher

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "setfit" else real_find_spec(name, *a)
    )
    config = tiny_sweep_config(tmp_path, tiny_student, methods=("setfit",))
    events = []
    sweep(
        config,
        teacher=word_teacher("sentiment"),
        splits=tiny_task,
        counterfactuals=[],
        probes=[],
        on_event=events.append,
    )
    assert [e.message for e in events if e.kind == "warning"] == [
        "setfit is not installed: `pip install setfit` to run this baseline; skipped."
    ]


def test_tiny_sweep_runs_resumes_and_summarises(tiny_task, tiny_student, tmp_path):
    from cod.sweep import load_results, sweep
    from tests.word_teacher import word_teacher

    teacher = word_teacher("sentiment")
    pool = _pairs(tiny_task.train, teacher)
    probes = _pairs(tiny_task.test[:6], teacher)
    config = SweepConfig(
        out=str(tmp_path / "sweep"),
        task="tiny",
        student=str(tiny_student),
        ks=(4,),
        seeds=(0, 1),
        methods=("kd", "kd+cod", "setfit"),
        distill={"epochs": 2, "batch_size": 4, "evaluations": 1, "max_length": 16},
    )
    events = []
    result = sweep(
        config, teacher=teacher, splits=tiny_task, counterfactuals=pool, probes=probes, on_event=events.append
    )
    out = tmp_path / "sweep"
    for name in (
        "results.csv",
        "summary.csv",
        "sweep.json",
        "teacher_test.npz",
        "counterfactuals/k4-s0.jsonl",
        "figures/accuracy_vs_k.html",
        "figures/cod_gain.json",
        "figures/edit_paths-kd_cod-k4-s0.json",
    ):
        assert (out / name).exists(), name
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 6 and set(results.status) == {"done"}
    assert set(results.method) == {"kd", "kd+cod", "setfit"}
    setfit = results[results.method == "setfit"]  # the real SetFit trainer on the same student, no teacher
    assert (setfit.real_examples == 4).all() and setfit.student_accuracy.between(0, 1).all()
    assert not [e for e in events if "setfit" in e.message] and not Path("checkpoints").exists()
    assert (results.n == len(tiny_task.test)).all() and (results.teacher_accuracy == 1.0).all()
    cod = results[results.method == "kd+cod"]
    # Budget matching: 2 real examples + their 2 counterfactuals vs 4 real examples of the same draw.
    assert (cod.train_examples == 4).all() and (cod.real_examples == 2).all() and (cod.counterfactuals_used == 2).all()
    assert (results[results.method == "kd"].real_examples == 4).all()
    assert (cod.cf_flip_rate == 1.0).all() and results.probe_pairs.eq(6).all()
    assert results.flip_fidelity.between(0, 1).all()
    summary = pd.read_csv(out / "summary.csv")
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    assert summary.set_index("method").loc["kd+cod", "n_paired"] == 2
    assert list(result.summary.method) == ["kd", "kd+cod", "setfit"]

    # Resume: nothing runs again; a larger grid only runs the new cells.
    events.clear()
    sweep(config, teacher=teacher, splits=tiny_task, counterfactuals=pool, probes=probes, on_event=events.append)
    assert [e.kind for e in events if e.kind in {"cell", "skip"}] == ["skip"] * 6
    events.clear()
    sweep(
        config.replace(seeds=(0, 1, 2)),
        teacher=teacher,
        splits=tiny_task,
        counterfactuals=pool,
        probes=probes,
        on_event=events.append,
    )
    assert [e.cell for e in events if e.kind == "cell"] == ["kd-k4-s2", "kd_cod-k4-s2", "setfit-k4-s2"]
    assert len(load_results(out)) == 9
    # Adding a method to the finished sweep: its tables keep every earlier cell and add the new ones.
    events.clear()
    more = sweep(
        config.replace(methods=("ce",), seeds=(0,)),
        teacher=teacher,
        splits=tiny_task,
        counterfactuals=pool,
        probes=probes,
        on_event=events.append,
    )
    assert [e.cell for e in events if e.kind == "cell"] == ["ce-k4-s0"]
    assert len(pd.read_csv(out / "results.csv")) == 10 and list(more.summary.method) == [
        "kd",
        "kd+cod",
        "setfit",
        "ce",
    ]
    assert json.loads((out / "sweep.json").read_text())["grid"] == {
        "ks": [4],
        "seeds": [0, 1, 2],
        "methods": ["kd", "kd+cod", "setfit", "ce"],
    }


def test_sweep_stops_cleanly_and_leaves_no_half_cell(tiny_task, tiny_student, tmp_path):
    from cod.sweep import sweep
    from tests.word_teacher import word_teacher

    teacher = word_teacher("sentiment")
    config = SweepConfig(
        out=str(tmp_path / "s"),
        student=str(tiny_student),
        ks=(4,),
        seeds=(0,),
        methods=("kd", "ce"),
        distill={"epochs": 1, "batch_size": 4, "evaluations": 1},
        probe_pairs=0,
        figures=False,
    )
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1  # let the first cell start, then stop

    events = []
    result = sweep(config, teacher=teacher, splits=tiny_task, stop=stop, on_event=events.append)
    # The first cell's run was stopped mid-way: it is not a finished cell, and nothing after it started.
    assert len(result.results) == 0 and events[-1].kind == "stopped"
    assert (
        not (tmp_path / "s" / "cells" / "kd-k4-s0").exists() and not (tmp_path / "s" / "cells" / "ce-k4-s0").exists()
    )
    result = sweep(config, teacher=teacher, splits=tiny_task)  # resumes: both cells run now
    assert list(result.results.method) == ["kd", "ce"]
    with pytest.raises(ValueError, match="training examples"):
        sweep(config, teacher=teacher, splits=tiny_task, probes=_pairs(tiny_task.train[:2], teacher))


def test_sweep_command_line_on_the_demo_task_with_tiny_models(tiny_classifier, tiny_student, tmp_path, capsys):
    from cod.cli import main

    out = tmp_path / "cli"
    argv = [
        "sweep",
        "--task",
        "demo",
        "--k",
        "4",
        "--seeds",
        "0",
        "--methods",
        "kd,ce",
        "--out",
        str(out),
        "--teacher",
        str(tiny_classifier),
        "--student",
        str(tiny_student),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-validation",
        "8",
        "--evaluations",
        "1",
        "--test-limit",
        "40",
        "--probe-pairs",
        "0",
        "--no-figures",
        "--set",
        "max_length=24",
        "--db",
        str(tmp_path / "cod.db"),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 cells" in printed and "[2/2] ce-k4-s0: accuracy" in printed and "summary.csv" in printed
    from cod.store.projects import Store

    with Store(tmp_path / "cod.db") as store:  # recorded, so the app's Compare tab can plot it
        (sweep,) = store.sweeps()
        rows = store.sweep_results(sweep["id"])
        assert [r["method"] for r in rows] == ["kd", "ce"] and all(r["k"] == 4 for r in rows)
    results = pd.read_csv(out / "results.csv")
    assert list(results.method) == ["kd", "ce"] and (results.n == 40).all() and (results.max_length == 24).all()
    assert main(argv) == 0 and "done before, skipped" in capsys.readouterr().out
    assert main([*argv[:-4], "--set", "max_length=32"]) == 2  # other settings in the same folder: refused
    assert "new --out folder" in capsys.readouterr().err


def test_a_cell_that_raises_is_retried_once_then_recorded_failed_without_losing_the_others(
    tiny_task, tiny_student, tmp_path, monkeypatch
):
    import cod.sweep.backends as backends
    from cod.sweep import sweep
    from tests.word_teacher import word_teacher

    real_run_cell, calls = backends.run_cell, []

    def flaky(cell, shared, stop=None):
        calls.append(cell.name)
        if cell.name == "kd-k4-s1" or (cell.name == "ce-k4-s0" and calls.count(cell.name) == 1):
            raise RuntimeError(f"worker lost while running {cell.name}")
        return real_run_cell(cell, shared, stop=stop)

    monkeypatch.setattr(backends, "run_cell", flaky)
    config = SweepConfig(
        out=str(tmp_path / "s"),
        student=str(tiny_student),
        ks=(4,),
        seeds=(0, 1),
        methods=("kd", "ce"),
        distill={"epochs": 1, "batch_size": 4, "evaluations": 1},
        probe_pairs=0,
        figures=False,
    )
    events = []
    result = sweep(config, teacher=word_teacher("sentiment"), splits=tiny_task, on_event=events.append)
    assert calls == ["kd-k4-s0", "ce-k4-s0", "ce-k4-s0", "kd-k4-s1", "kd-k4-s1", "ce-k4-s1"]
    status = dict(zip(result.results.method + "-" + result.results.seed.astype(str), result.results.status))
    assert status == {"kd-0": "done", "kd-1": "error", "ce-0": "done", "ce-1": "done"}
    (failed,) = [e for e in events if e.kind == "error"]
    assert (
        failed.cell == "kd-k4-s1"
        and "failed 2 times" in failed.message
        and "worker lost while running kd-k4-s1" in failed.message
    )
    assert list(result.summary.n_seeds) == [1, 2]  # the failed cell is left out of the summary, not the others
    monkeypatch.setattr(backends, "run_cell", real_run_cell)
    events.clear()
    sweep(
        config, teacher=word_teacher("sentiment"), splits=tiny_task, on_event=events.append
    )  # a failed cell runs again
    assert [e.cell for e in events if e.kind == "cell"] == ["kd-k4-s1"]


def test_sweep_help_documents_the_backends(capsys):
    from cod.cli import main

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--backend {local,ray}",
        "--address ADDRESS",
        "--cpus-per-cell",
        "--gpus-per-cell",
        "ray://HOST:10001",
    ):
        assert flag in text, flag


def test_a_teacher_loaded_from_a_folder_travels_by_pickle(tiny_classifier):
    import pickle

    from cod.modeling.loading import load_teacher

    teacher = load_teacher(str(tiny_classifier))
    copy = pickle.loads(pickle.dumps(teacher))
    texts = ["the film is good", "the plot is terrible and dull"]
    np.testing.assert_allclose(copy.predict_proba(texts), teacher.predict_proba(texts), atol=1e-6)


def test_a_teacher_travels_by_pickle_with_its_scores():
    # Ray ships the sweep's teacher to its workers by pickle: its lock is remade and its bounded score cache kept.
    import pickle

    from tests.word_teacher import word_teacher

    teacher = word_teacher("sentiment")
    texts = ["the film is good", "the plot is terrible"]
    probs = teacher.predict_proba(texts)
    copy = pickle.loads(pickle.dumps(teacher))
    assert copy._logits.limit == teacher._logits.limit and list(copy._logits) == texts
    passes = copy.forward_passes
    np.testing.assert_allclose(copy.predict_proba(texts), probs)
    assert copy.forward_passes == passes  # answered from the cache it came with
    copy.predict_proba(["a new text"])  # and its lock works


def test_control_methods_run_beside_cod_on_the_same_draw(tiny_task, tiny_student, tmp_path):
    from cod.counterfactuals.base import Counterfactual
    from cod.sweep import sweep
    from tests.word_teacher import word_teacher

    teacher = word_teacher("sentiment")
    config = SweepConfig(
        out=str(tmp_path / "sweep"),
        task="tiny",
        student=str(tiny_student),
        ks=(4,),
        seeds=(0,),
        methods=("kd", "kd+cod", "kd+augment", "kd+cod-m2"),
        probe_pairs=0,
        figures=False,
        distill={"epochs": 2, "batch_size": 4, "evaluations": 1, "max_length": 16},
    )
    result = sweep(
        config, teacher=teacher, splits=tiny_task, counterfactuals=_pairs(tiny_task.train, teacher), probes=[]
    )
    rows = result.results.set_index("method")
    assert set(rows.status) == {"done"} and (rows.labels_used == 4).all()
    # augment: the same 2 real examples and as many edits as CoD trains on (kept whether or not they flip).
    assert rows.loc["kd+augment", "real_examples"] == rows.loc["kd+cod", "real_examples"] == 2
    assert rows.loc["kd+augment", "train_examples"] == rows.loc["kd+cod", "train_examples"] == 4
    assert rows.loc["kd+augment", "keep_unflipped"] and not rows.loc["kd+cod", "keep_unflipped"]
    # cod-m2: all 4 real examples, up to 2 counterfactuals each.
    assert rows.loc["kd+cod-m2", "real_examples"] == 4 and 4 + 4 <= rows.loc["kd+cod-m2", "train_examples"] <= 4 + 8
    out = tmp_path / "sweep" / "counterfactuals"
    names = ["negative", "positive"]
    lines = (out / "k4-s0.jsonl").read_text().splitlines()
    cod = {c.text: c for c in (Counterfactual.from_record(json.loads(line), names) for line in lines)}
    augment = [
        Counterfactual.from_record(json.loads(line), names)
        for line in (out / "augment-k4-s0.jsonl").read_text().splitlines()
    ]
    assert {a.text for a in augment} == set(cod) and all(a.proposer == "augment" for a in augment)
    assert all(a.words_changed == cod[a.text].words_changed for a in augment)
    assert (out / "cod-m-k4-s0.jsonl").exists()
    assert set(result.summary[result.summary.method != "kd"].baseline) == {"kd"}
