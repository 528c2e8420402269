"""Load teachers and students: any Hub id or local folder, or `demo` for the embedded defaults.

The loading code is the ordinary Hugging Face code (`from_pretrained`), so online users can name any Hub model;
offline, a Hub id fails with a `ModelError` that says so and suggests a local folder or `demo`. Label names come
from the checkpoint's `config.id2label`; a teacher whose labels do not match the data's is refused with the mapping
shown. Teachers are cached per process, keyed by what they are (path, device, dtype, max length).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from cod import DEMO
from cod.errors import ModelError
from cod.modeling.runtime import (  # noqa: F401  (re-exported: callers import them from here too)
    DTYPES,
    check_public_model,
    check_public_size,
    count_parameters,
    hub_kwargs,
    pick_device,
    resolve_dtype,
)
from cod.modeling.runtime import load_error as _load_error

log = logging.getLogger(__name__)

GENERIC_LABEL = re.compile(r"^LABEL_(\d+)$")
HEADS = ("auto", "cls", "mean")
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json")

_teachers: dict[tuple, object] = {}  # process-level cache: key -> Teacher, at most max_cached_teachers() (LRU)
_teachers_lock = threading.Lock()  # held for lookups only, never during a load
_loading: dict[tuple, threading.Lock] = {}  # key -> the lock of its load in progress


def resolve_teacher_name(name: str) -> str:
    """`demo` -> the built demo teacher's folder (built if missing); anything else unchanged."""
    if name.strip() == DEMO:
        from cod.modeling.demo.build import demo_teacher_path

        return str(demo_teacher_path())
    return name


def resolve_student_name(name: str) -> str:
    """`demo` -> the packaged all-MiniLM-L6-v2 folder; anything else unchanged."""
    if name.strip() == DEMO:
        from cod.modeling.demo.build import demo_student_path

        return str(demo_student_path())
    return name


def _check_name(name: str) -> None:
    """Fail early, with a clear message, on an empty name or a local path that does not exist."""
    if not name or not name.strip():
        raise ModelError("A model name is required: a Hub id (like 'org/model'), a local folder, or 'demo'.")
    # A Hub id is "name" or "org/name"; anything else is meant as a local path.
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or Path(name).exists()
    path = Path(name).expanduser()
    if looks_local and not path.exists():
        raise ModelError(f"No model folder at {name!r}: give an existing local folder, a Hub id (online), or 'demo'.")
    if path.is_dir() and not (path / "config.json").exists():
        raise ModelError(
            f"{name!r} has no config.json: point at a folder saved with save_pretrained (or a Hub id, or 'demo')."
        )


def has_sentence_transformers_files(name: str) -> bool:
    """Whether a checkpoint (local folder or, online, a Hub id) was saved by sentence-transformers (mean pooling)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return any((path / f).exists() for f in SENTENCE_TRANSFORMERS_FILES)
    try:
        from transformers.utils import cached_file

        return (
            cached_file(
                name,
                "modules.json",
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
            is not None
        )
    except Exception:  # offline or unknown id: the later load reports the real problem
        return False


def model_label_names(config) -> list[str]:
    """Label names in index order from a config's id2label."""
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def check_labels(model_label_names: Sequence[str], data_label_names: Sequence[str]) -> None:
    """Raise ModelError unless the model's labels match the data's, index by index (case-insensitive).

    Generic names (LABEL_0, LABEL_1, ...) match by index when the counts agree, with a warning.
    """
    model, data = [str(n) for n in model_label_names], [str(n) for n in data_label_names]
    mapping = ", ".join(f"{i}: model {m!r} / data {d!r}" for i, (m, d) in enumerate(zip(model, data)))
    if len(model) != len(data):
        raise ModelError(
            f"The model has {len(model)} labels {model} but the data has {len(data)} {data}: "
            "choose a model trained for these labels or map the data's labels."
        )
    if [m.lower() for m in model] == [d.lower() for d in data]:
        return
    if all(GENERIC_LABEL.match(m) and int(GENERIC_LABEL.match(m).group(1)) == i for i, m in enumerate(model)):
        log.warning("The model's labels are generic (%s): mapped by index to the data's labels (%s).", model, mapping)
        return
    same_set = sorted(m.lower() for m in model) == sorted(d.lower() for d in data)
    advice = (
        "the same names in another order: reorder the data's label names to match the model"
        if same_set
        else "choose a model trained for these labels, or rename the data's labels"
    )
    raise ModelError(f"The model's labels do not match the data's ({mapping}): {advice}.")


def is_causal_lm(config) -> bool:
    """Whether a checkpoint is a decoder-only language model (Llama, Qwen2, SmolLM, GPT-2 ...), not an encoder."""
    from cod.modeling.heads import MODEL_TYPE

    if config.model_type == MODEL_TYPE:
        return is_causal_lm(config.encoder)
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    return bool(getattr(config, "is_decoder", False)) and not getattr(config, "add_cross_attention", False)


def ensure_pad_token(tokenizer) -> None:
    """Give a decoder's tokenizer a pad token (its EOS, else UNK, else BOS): batches of unequal texts need one, and
    last-token pooling finds each text's end through it."""
    if tokenizer.pad_token is not None:
        return
    for name in ("eos_token", "unk_token", "bos_token"):
        if getattr(tokenizer, name, None) is not None:
            tokenizer.pad_token = getattr(tokenizer, name)
            return
    raise ModelError(
        f"The tokenizer of {getattr(tokenizer, 'name_or_path', 'the student')!r} has no pad, EOS, UNK or BOS token to "
        "pad batches with: add a pad token to it (tokenizer.add_special_tokens({'pad_token': ...})) and save it."
    )


def _is_classifier(config) -> bool:
    from cod.modeling.heads import MODEL_TYPE

    archs = getattr(config, "architectures", None) or []
    return config.model_type == MODEL_TYPE or any("ForSequenceClassification" in a for a in archs)


def load_classifier(
    name: str,
    label_names: Sequence[str] | None = None,
    device=None,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    head: str = "auto",
    require_head: bool = False,
    trusted: bool = False,
):
    """(model, tokenizer) of a trained sequence classifier: a Hub id, a local folder, or `demo` (the demo teacher).

    `label_names`, when given, must match the model's (see `check_labels`). `head` only matters for checkpoints
    without a trained head ("mean" or "cls" picks the kind of fresh head; "auto" as in `load_student`), which are
    refused with `require_head` (a teacher with a random head would teach noise). `trusted`: a path the app resolved
    itself (the demo teacher's folder, a run folder it saved), exempt from the public-mode model list.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.heads import register

    register()  # the mean-pooling head, before any Auto lookup

    if head not in HEADS:
        raise ModelError(f"head {head!r} is not one of {', '.join(HEADS)}.")
    if not trusted:
        check_public_model(name)
    path = resolve_teacher_name(name)
    _check_name(path)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    torch_dtype = resolve_dtype(dtype, device)
    hub = hub_kwargs()
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **hub)
    except (OSError, ValueError) as err:
        raise _load_error(name, err) from err
    check_public_size(name, config)
    if not _is_classifier(config) and require_head:
        raise ModelError(
            f"{name!r} is not a trained sequence classifier (architectures {getattr(config, 'architectures', None)}), "
            "so it cannot be a teacher: choose a classifier fine-tuned for the task (e.g. a '...-sst-2' model), "
            "or 'demo'."
        )
    if not _is_classifier(config):
        log.warning(
            "%s has no trained classification head (architectures %s): its head is new and random.",
            name,
            getattr(config, "architectures", None),
        )
        model, tokenizer = load_student(
            path,
            label_names or ["LABEL_0", "LABEL_1"],
            head=head,
            device=device,
            trust_remote_code=trust_remote_code,
            trusted=True,
        )
        return model.to(torch_dtype).eval(), tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **hub)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, config=config, dtype=torch_dtype, trust_remote_code=trust_remote_code, **hub
        )
    except (OSError, ValueError) as err:
        raise _load_error(name, err) from err
    if label_names is not None:
        check_labels(model_label_names(model.config), label_names)
    return model.to(device).eval(), tokenizer


def load_student(
    name: str = DEMO,
    label_names: Sequence[str] = ("negative", "positive"),
    head: str = "auto",
    device=None,
    trust_remote_code: bool = False,
    trusted: bool = False,
):
    """(model, tokenizer) of a student with a fresh classification head labelled `label_names` (float32).

    head="mean": `MeanPoolingForSequenceClassification` over the checkpoint's encoder; "cls": the checkpoint's own
    `AutoModelForSequenceClassification` (CLS token + pooler); "auto": "mean" for sentence-transformers checkpoints
    (modules.json / 1_Pooling), else "cls". A checkpoint that already is a classifier with as many labels keeps its
    head. A causal LM (Llama, Qwen2 ...) becomes a decoder student: "cls" (and "auto") is its architecture's own
    head, which reads the last real token, "mean" the mean over real tokens; its tokenizer gets a pad token (EOS)
    when it has none.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from cod.modeling.heads import MODEL_TYPE, MeanPoolingForSequenceClassification, register

    register()  # a saved mean-pooling student loads through the Auto classes
    if head not in HEADS:
        raise ModelError(f"head {head!r} is not one of {', '.join(HEADS)}.")
    label_names = [str(n) for n in label_names]
    if len(label_names) < 2 or len(set(label_names)) != len(label_names):
        raise ModelError(f"A student needs at least two distinct label names, got {label_names}.")
    if not trusted:  # a path load_classifier already checked
        check_public_model(name)
    path = resolve_student_name(name)
    _check_name(path)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    labels = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}}
    hub = hub_kwargs()
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **hub)
        check_public_size(name, config)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **hub)
        if is_causal_lm(config):
            ensure_pad_token(tokenizer)
            labels["pad_token_id"] = tokenizer.pad_token_id  # where last-token pooling stops
        if head == "auto":
            head = "mean" if config.model_type == MODEL_TYPE or has_sentence_transformers_files(path) else "cls"
        if head == "mean" and config.model_type != MODEL_TYPE:
            model = MeanPoolingForSequenceClassification.from_encoder(
                path, label_names, trust_remote_code=trust_remote_code, **hub
            )
        else:
            if head == "mean" or config.model_type == MODEL_TYPE:
                head = "mean"  # a saved mean-pooling model stays one
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(label_names),
                ignore_mismatched_sizes=True,
                trust_remote_code=trust_remote_code,
                dtype=torch.float32,
                **labels,
                **hub,
            )
    except (OSError, ValueError) as err:
        raise _load_error(name, err, "student") from err
    model.config.update(labels)
    if "pad_token_id" in labels and model.config.model_type == MODEL_TYPE:  # a decoder under the mean-pooling head
        model.encoder.config.pad_token_id = labels["pad_token_id"]
        model.encoder.config.use_cache = False  # a classifier never generates: keep no key/value cache
    model.cod_head = head  # recorded by distillation runs
    return model.to(device), tokenizer


def _cache_key(path: str, device, dtype: str, max_length: int, trust_remote_code: bool) -> tuple:
    # A local folder's config.json time is part of the key, so a rebuilt model (build-demo --force) is reloaded.
    config = Path(path).expanduser() / "config.json"
    stamp = config.stat().st_mtime_ns if config.exists() else None
    return (
        str(Path(path).expanduser().resolve()) if config.exists() else path,
        str(device),
        dtype,
        max_length,
        trust_remote_code,
        stamp,
    )


DEMO_TEACHER_MAX_LENGTH = 128  # the length the demo teacher's saved logits were computed with


def load_teacher(
    name: str = DEMO,
    device=None,
    dtype: str = "auto",
    max_length: int = 128,
    batch_size: int = 32,
    trust_remote_code: bool = False,
    kind: str = "auto",
    label_names: Sequence[str] | None = None,
    options=None,
):
    """The teacher `name` means, one per (model, device, dtype, settings) per process.

    A classifier (Hub id, local folder, or `demo`) gives a `Teacher`; `demo-llm`, a `.gguf` file, a causal-LM
    checkpoint or `kind="causal-lm"` a `CausalLMTeacher`; `api:MODEL` an `APITeacher` (see `cod.modeling.teachers`).
    LLM teachers answer with `label_names` (default negative/positive) as `options` (`LLMTeacherOptions`) say.
    """
    import torch

    from cod.modeling.scoring import Teacher
    from cod.modeling.teachers.load import teacher_kind

    check_public_model(name)  # the name as given ('demo' resolves to a folder, which is then trusted)
    kind = teacher_kind(name, kind, trust_remote_code)
    if kind != "classifier":
        return _load_llm_teacher(name, kind, label_names, options, device, dtype, max_length, trust_remote_code)
    path = resolve_teacher_name(name)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    key = _cache_key(path, device, dtype, max_length, trust_remote_code)

    def load():
        model, tokenizer = load_classifier(
            path, device=device, dtype=dtype, trust_remote_code=trust_remote_code, require_head=True, trusted=True
        )
        teacher = Teacher(model, tokenizer, name=name, max_length=max_length, batch_size=batch_size)
        if name == DEMO and max_length >= DEMO_TEACHER_MAX_LENGTH:  # its held-out logits were saved at build time
            from cod.modeling.demo.build import prime_demo_teacher

            prime_demo_teacher(teacher)
        return teacher

    teacher = _cached(key, load)
    teacher.batch_size = batch_size  # batching does not change results: share the teacher and its cache
    return teacher


def _cached(key: tuple, load):
    """The cached teacher for `key`, else `load()` it. The cache's lock is held only for lookups: a slow load (a
    large checkpoint, a build another process runs) blocks only callers of the same key, never other teachers."""
    with _teachers_lock:
        teacher = _teachers.get(key)
        if teacher is not None:
            _teachers[key] = _teachers.pop(key)  # now the most recently used
            return teacher
        loading = _loading.setdefault(key, threading.Lock())
    with loading:  # one load per key: a second caller waits for the first one's teacher
        with _teachers_lock:
            teacher = _teachers.get(key)
        if teacher is None:
            try:
                teacher = load()
            except BaseException:
                with _teachers_lock:
                    _loading.pop(key, None)
                raise
            with _teachers_lock:
                _teachers[key] = teacher
                _loading.pop(key, None)
                while len(_teachers) > max_cached_teachers():  # the least recently loaded one goes first
                    _teachers.pop(next(iter(_teachers)))
        return teacher


def max_cached_teachers() -> int:
    """Teachers kept loaded per process (COD_MAX_MODELS, default 3): each is hundreds of MB."""
    return max(1, int(os.environ.get("COD_MAX_MODELS", "3")))


def _load_llm_teacher(name, kind, label_names, options, device, dtype, max_length, trust_remote_code):
    """A causal-LM or API teacher, cached per process like classifiers (API teachers keep their spend counters)."""
    from cod.modeling.teachers.load import LLMTeacherOptions, load_llm_teacher

    options = options or LLMTeacherOptions()
    labels = tuple(str(n) for n in label_names) if label_names is not None else None
    key = ("llm", kind, name.strip(), str(device), dtype, max_length, trust_remote_code, labels, options.key())
    return _cached(
        key,
        lambda: load_llm_teacher(
            name,
            kind,
            labels,
            options,
            device=device,
            dtype=dtype,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
        ),
    )


def clear_teacher_cache() -> None:
    """Forget every cached teacher (tests; freeing memory)."""
    with _teachers_lock:
        _teachers.clear()


def teacher_from_config(config) -> object:
    """`load_teacher` with the settings of a `cod.config.ModelConfig`."""
    return load_teacher(
        config.name,
        device=config.device,
        dtype=config.dtype,
        max_length=config.max_length,
        batch_size=config.batch_size,
        trust_remote_code=config.trust_remote_code,
    )
