"""Loading teachers and students: label names and checks, devices, dtypes, clear errors offline, the teacher cache."""

import json
import logging
import shutil
import time

import pytest
import torch

from cod.errors import ModelError
from cod.modeling.heads import MeanPoolingForSequenceClassification
from cod.modeling.loading import (
    check_labels,
    clear_teacher_cache,
    load_classifier,
    load_student,
    load_teacher,
    pick_device,
    resolve_dtype,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_teacher_cache()
    yield
    clear_teacher_cache()


def test_pick_device():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelError, match="not valid|not supported"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            pick_device("cuda:0")


def test_resolve_dtype():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ModelError, match="'int8' is not one of"):
        resolve_dtype("int8", cpu)


def test_check_labels():
    check_labels(["negative", "positive"], ["negative", "positive"])
    check_labels(["NEGATIVE", "POSITIVE"], ["negative", "positive"])  # case does not matter
    with pytest.raises(ModelError, match=r"3 labels .* data has 2"):
        check_labels(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ModelError, match=r"0: model 'positive' / data 'negative'.*another order"):
        check_labels(["positive", "negative"], ["negative", "positive"])
    with pytest.raises(ModelError, match=r"0: model 'sports' / data 'negative'"):
        check_labels(["sports", "politics"], ["negative", "positive"])


def test_generic_labels_map_by_index_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="cod.modeling.loading"):
        check_labels(["LABEL_0", "LABEL_1"], ["negative", "positive"])
    assert "mapped by index" in caplog.text


def test_load_classifier_reads_label_names(tiny_classifier, tiny_classifier_3way):
    model, tokenizer = load_classifier(str(tiny_classifier), label_names=["negative", "positive"], device="cpu")
    assert model.config.id2label == {0: "negative", 1: "positive"} and not model.training
    assert tokenizer("good film")["input_ids"]
    with pytest.raises(ModelError, match=r"3 labels \['sports', 'politics', 'tech'\] but the data has 2"):
        load_classifier(str(tiny_classifier_3way), label_names=["negative", "positive"])


def test_load_classifier_dtype(tiny_classifier):
    model, _ = load_classifier(str(tiny_classifier), device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16


def test_offline_hub_id_is_a_clear_error():
    with pytest.raises(ModelError) as err:
        load_classifier("some-org/not-a-real-model-xyz")
    message = str(err.value)
    assert "'some-org/not-a-real-model-xyz' could not be loaded" in message
    assert "local folder" in message and "'demo'" in message


def test_missing_local_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelError, match="No model folder at"):
        load_classifier(str(tmp_path / "nope" / "model"))
    with pytest.raises(ModelError, match="has no config.json"):
        load_classifier(str(tmp_path))


def test_teacher_cache_is_per_model_device_and_length(tiny_classifier, tiny_classifier_3way):
    first = load_teacher(str(tiny_classifier), device="cpu")
    assert load_teacher(str(tiny_classifier), device="cpu", batch_size=4) is first
    assert first.batch_size == 4
    assert load_teacher(str(tiny_classifier), device="cpu", max_length=32) is not first
    assert load_teacher(str(tiny_classifier_3way), device="cpu").label_names == ["sports", "politics", "tech"]
    first.predict_proba(["good"])
    assert load_teacher(str(tiny_classifier), device="cpu").forward_passes == 1  # the cache travels with it


def test_a_slow_load_never_blocks_another_loaded_teacher(tmp_path, tiny_classifier):
    """A real slow load (a deep checkpoint: seconds of building and reading weights) runs in one thread while another
    thread asks for an already-loaded teacher and scores texts: that answers at once, long before the load ends."""
    import threading

    from cod.modeling import loading
    from tests.tiny import make_tiny_classifier

    slow_path = str(make_tiny_classifier(tmp_path / "deep", hidden=4, layers=300))
    fast_path = str(tiny_classifier)
    loaded = load_teacher(fast_path)
    slow = threading.Thread(target=load_teacher, args=(slow_path,), daemon=True)
    slow.start()
    deadline = time.time() + 120
    while not loading._loading and slow.is_alive():  # wait until the slow load holds its own lock
        assert time.time() < deadline
        time.sleep(0.001)
    answered = threading.Event()

    def predict():
        assert load_teacher(fast_path) is loaded
        loaded.predict_proba([f"a good film {i}" for i in range(20)])
        answered.set()

    threading.Thread(target=predict, daemon=True).start()
    assert answered.wait(timeout=60)
    assert slow.is_alive(), "the prediction waited for the slow load (or the load was too quick to tell)"
    slow.join(timeout=300)
    assert not slow.is_alive() and load_teacher(slow_path).num_labels == 2  # the slow load completed and is cached


def test_rebuilt_model_is_reloaded(tmp_path, tiny_classifier):
    path = tmp_path / "model"
    shutil.copytree(tiny_classifier, path)
    first = load_teacher(str(path), device="cpu")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(config))  # a rebuild rewrites the folder
    import os

    os.utime(path / "config.json", ns=(1, 1))
    assert load_teacher(str(path), device="cpu") is not first


def test_a_bare_encoder_cannot_be_a_teacher(tmp_path, tiny_classifier):
    from transformers import AutoModel

    AutoModel.from_pretrained(tiny_classifier).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="not a trained sequence classifier"):
        load_teacher(str(tmp_path), device="cpu")


def test_student_heads(tmp_path, tiny_classifier):
    labels = ["neg", "neutral", "pos"]
    cls, _ = load_student(str(tiny_classifier), labels, head="cls", device="cpu")
    assert type(cls).__name__ == "BertForSequenceClassification" and cls.classifier.out_features == 3
    assert cls.config.id2label == dict(enumerate(labels)) and cls.cod_head == "cls"
    mean, _ = load_student(str(tiny_classifier), labels, head="mean", device="cpu")
    assert isinstance(mean, MeanPoolingForSequenceClassification) and mean.cod_head == "mean"
    assert (
        load_student(str(tiny_classifier), labels, device="cpu")[0].cod_head == "cls"
    )  # no sentence-transformers files
    st = tmp_path / "st"
    shutil.copytree(tiny_classifier, st)
    (st / "modules.json").write_text("[]")
    assert load_student(str(st), labels, device="cpu")[0].cod_head == "mean"
    with pytest.raises(ModelError, match="at least two distinct"):
        load_student(str(tiny_classifier), ["only"])
    with pytest.raises(ModelError, match="head 'max'"):
        load_student(str(tiny_classifier), labels, head="max")


def test_saved_mean_student_loads_back_as_a_student(tmp_path, tiny_classifier):
    model, tok = load_student(str(tiny_classifier), ["negative", "positive"], head="mean", device="cpu")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, _ = load_student(str(tmp_path), ["negative", "positive"], device="cpu")
    assert isinstance(again, MeanPoolingForSequenceClassification)
    assert torch.equal(again.classifier.weight, model.classifier.weight)  # same labels: the trained head is kept
    teacher, _ = load_classifier(str(tmp_path), label_names=["negative", "positive"], device="cpu")
    assert isinstance(teacher, MeanPoolingForSequenceClassification)


def test_demo_student_is_minilm_with_a_mean_pooling_head():
    model, tokenizer = load_student("demo", ["negative", "positive"], device="cpu")
    assert isinstance(model, MeanPoolingForSequenceClassification) and model.cod_head == "mean"
    assert model.config.encoder.hidden_size == 384 and model.config.encoder.num_hidden_layers == 6
    out = model(**tokenizer(["a fine film"], return_tensors="pt"), output_hidden_states=True)
    assert out.logits.shape == (1, 2) and len(out.hidden_states) == 7


def test_predict_cli_json(tiny_classifier, capsys):
    from cod.cli import main

    assert main(["predict", "--teacher", str(tiny_classifier), "--json", "a good film", "bad"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["a good film", "bad"]
    assert set(rows[0]["probs"]) == {"negative", "positive"}
    assert abs(sum(rows[1]["probs"].values()) - 1) < 1e-4


def test_predict_cli_error_is_one_line(capsys):
    from cod.cli import main

    assert main(["predict", "--teacher", "some-org/not-a-real-model-xyz", "text"]) == 2
    assert "could not be loaded" in capsys.readouterr().err


def test_model_config(tiny_classifier):
    from cod.config import ConfigError, ModelConfig
    from cod.modeling.loading import teacher_from_config

    with pytest.raises(ConfigError, match="head 'max'"):
        ModelConfig(head="max")
    assert ModelConfig.from_dict(ModelConfig(name="x", head="mean").to_dict()).head == "mean"
    teacher = teacher_from_config(ModelConfig(name=str(tiny_classifier), device="cpu", max_length=16, batch_size=3))
    assert teacher is load_teacher(str(tiny_classifier), device="cpu", max_length=16, batch_size=3)
    assert teacher.max_length == 16 and teacher.batch_size == 3
