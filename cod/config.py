"""Settings of every component: frozen dataclasses, validated in `__post_init__` with errors that name the value.

Each class is owned by one module (named in its docstring); `to_dict`/`from_dict` give the JSON saved beside results.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from cod.errors import ConfigError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of the settings."""
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from a dict, rejecting unknown keys with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        _check(not unknown, f"Unknown {cls.__name__} setting(s) {unknown}: known settings are {sorted(known)}.")
        return cls(**d)

    def replace(self, **changes):
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class DataConfig(_Serialisable):
    """How `cod.data.readers` reads files: column mapping, label set, limits and what to drop."""

    text_column: str | None = None  # None: guess from common names (text, sentence, review, ...)
    text_pair_column: str | None = None  # None: guessed only for known pairs (sentence1/sentence2, ...)
    label_column: str | None = None  # None: guess from common names (label, sentiment, ...)
    label_names: tuple[str, ...] | None = None  # fixes the label order; int labels then index into it
    split: str | None = None  # split of a Hub dataset or a saved DatasetDict; None: "train"
    subset: str | None = None  # Hub dataset configuration, e.g. "sst2" for "nyu-mll/glue"
    max_file_mb: float = 200.0
    max_chars: int = 2000  # longer texts are truncated with a warning
    drop_duplicates: bool = False  # False: duplicates are kept and reported
    drop_rare_labels: bool = False  # False: a label seen once among many is an error (likely a typo)

    def __post_init__(self) -> None:
        _check(self.max_file_mb > 0, f"max_file_mb must be positive, got {self.max_file_mb}.")
        _check(self.max_chars >= 16, f"max_chars must be at least 16, got {self.max_chars}.")
        if self.label_names is not None:
            names = tuple(str(n) for n in self.label_names)
            object.__setattr__(self, "label_names", names)  # lists from JSON become a hashable tuple
            _check(len(names) >= 2, f"label_names needs at least two names, got {list(names)}.")
            _check(
                len({n.strip().casefold() for n in names}) == len(names),
                f"label_names {list(names)} repeat a name (case is ignored): give each class one name.",
            )


@dataclass(frozen=True)
class ModelConfig(_Serialisable):
    """Which model and how to run it (`cod.modeling.loading`). `name` is a Hub id, a local path, or 'demo'."""

    name: str = "demo"
    device: str | None = None  # None: cuda > mps > cpu
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    max_length: int = 128
    batch_size: int = 32
    trust_remote_code: bool = False  # stays off unless the user turns it on
    head: str = "auto"  # students: auto (mean for sentence-transformers checkpoints, else cls) | cls | mean

    def __post_init__(self) -> None:
        _check(bool(self.name and self.name.strip()), "A model name is required: a Hub id, a local path, or 'demo'.")
        _check(self.head in {"auto", "cls", "mean"}, f"head {self.head!r} is not one of auto, cls, mean.")
        _check(
            self.dtype in {"auto", "float32", "float16", "bfloat16"},
            f"dtype {self.dtype!r} is not one of auto, float32, float16, bfloat16.",
        )
        _check(self.max_length >= 8, f"max_length must be at least 8, got {self.max_length}.")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}.")
        _check(
            self.device is None or self.device.split(":")[0] in {"cpu", "cuda", "mps"},
            f"device {self.device!r} is not cpu, cuda, cuda:N or mps.",
        )


@dataclass(frozen=True)
class LexicalConfig(_Serialisable):
    """The offline teacher-guided search (`cod.counterfactuals.lexical`)."""

    max_edits: int = 3  # word edits per counterfactual
    beam_width: int = 4
    positions: int = 6  # most salient positions tried
    substitutes: int = 6  # candidate words per position
    expansions: int = 8  # best single edits each beam state is extended with
    wordnet: bool = True  # use WordNet antonyms when a WordNet database is installed
    shrink: bool = True  # revert edits that are not needed for the flip
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_edits", "beam_width", "positions", "substitutes", "expansions"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class LLMConfig(_Serialisable):
    """An OpenAI-compatible endpoint (`cod.counterfactuals.llm`). The key is never stored: it comes from the
    environment (`COD_LLM_API_KEY` or `OPENAI_API_KEY`) or is passed at call time."""

    base_url: str | None = field(default_factory=lambda: os.environ.get("COD_LLM_BASE_URL") or None)
    model: str = field(default_factory=lambda: os.environ.get("COD_LLM_MODEL", "gpt-4o-mini"))
    task: str = "auto"  # auto (from the label names) | sentiment | grammaticality | generic
    task_description: str = ""  # what the classes mean, put at the top of the prompt
    candidates: int = 3  # rewrites asked for per request
    rounds: int = 2  # requests per example: the first, then feedback rounds while nothing flips
    concurrency: int = 4  # examples in flight at once
    temperature: float = 0.7
    max_tokens: int = 256
    timeout_s: float = 30.0  # per request
    max_retries: int = 3  # per request, on 429 / 5xx / timeouts / connection errors
    retry_delay_s: float = 1.0  # first backoff delay; doubles on each retry (tests make it tiny)
    max_retry_after_s: float = 60.0  # a longer Retry-After from the server is cut to this

    def __post_init__(self) -> None:
        _check(bool(self.model), "An LLM model name is required (set --llm-model or COD_LLM_MODEL).")
        _check(
            self.task in {"auto", "sentiment", "grammaticality", "generic"},
            f"task {self.task!r} is not auto, sentiment, grammaticality or generic.",
        )
        for name in ("candidates", "rounds", "concurrency", "max_tokens"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}.")
        _check(self.candidates <= 20, f"candidates must be at most 20 per request, got {self.candidates}.")
        _check(0.0 <= self.temperature <= 2.0, f"temperature must be within [0, 2], got {self.temperature}.")
        _check(self.timeout_s > 0, f"timeout_s must be positive, got {self.timeout_s}.")
        _check(isinstance(self.max_retries, int) and self.max_retries >= 0, f"max_retries must be 0 or more, got {self.max_retries!r}.")
        _check(self.retry_delay_s >= 0, f"retry_delay_s must be 0 or more, got {self.retry_delay_s}.")
        _check(self.max_retry_after_s >= 0, f"max_retry_after_s must be 0 or more, got {self.max_retry_after_s}.")
        _check(
            self.base_url is None or self.base_url.startswith(("http://", "https://")),
            f"base_url {self.base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8080/v1).",
        )


@dataclass(frozen=True)
class DistillConfig(_Serialisable):
    """One distillation run (`cod.distill.trainer`). Paper defaults: alpha 20, T 2."""

    method: str = "kd"  # ce | kd | lwd
    cod: bool = False  # k/2 real examples + their k/2 counterfactuals
    k: int = 16
    seed: int = 0
    alpha: float = 20.0
    temperature: float = 2.0
    beta: float = 1.0  # LWD weight
    lwd_mode: str = "auto"  # auto | token | pooled
    ce_on_counterfactuals: bool = True  # CE label of a counterfactual is the teacher's argmax
    keep_unflipped: bool = False  # keep counterfactuals the teacher did not flip
    epochs: int = 75
    max_steps: int = 0  # optimizer steps for the whole run, overriding epochs; 0: epochs x batches per epoch
    learning_rate: float = 6e-5
    batch_size: int = 8
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    gradient_accumulation: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16 (GPU only; CPU runs in float32 whatever is asked)
    eval_every: int = 0  # steps between validation evaluations; 0: spread `evaluations` over the run
    evaluations: int = 10  # validation evaluations per run when eval_every is 0 (kept few: they dominate on CPU)
    max_validation: int = 0  # evaluate on the first N validation examples only; 0: all of them
    selection_metric: str = "accuracy"  # accuracy | macro_f1, on validation only (never test)
    early_stopping: int = 0  # evaluations without improvement; 0: off
    checkpoint_every: int = 0  # steps between resumable checkpoints in out_dir; 0: at every evaluation
    resume: bool = True  # continue from out_dir's checkpoint when one of the same run exists
    head: str = "auto"  # auto | cls | mean
    ce_label: str = "gold"  # gold | teacher: the CE label of the real examples (counterfactuals always use the teacher's)
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    eval_batch_size: int = 64
    tracker: str = ""  # "" (off) | trackio | tensorboard | wandb ...: an accelerate tracker, when installed

    def __post_init__(self) -> None:
        _check(self.method in {"ce", "kd", "lwd"}, f"method {self.method!r} is not one of ce, kd, lwd.")
        _check(self.k >= 2, f"k must be at least 2 (one example per class), got {self.k}.")
        _check(not self.cod or self.k % 2 == 0, f"With CoD, k must be even (k/2 real + k/2 counterfactuals), got {self.k}.")
        _check(self.alpha >= 0, f"alpha must be 0 or more, got {self.alpha}.")
        _check(self.temperature > 0, f"temperature must be positive, got {self.temperature}.")
        _check(self.beta >= 0, f"beta must be 0 or more, got {self.beta}.")
        _check(self.lwd_mode in {"auto", "token", "pooled"}, f"lwd_mode {self.lwd_mode!r} is not auto, token or pooled.")
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}.")
        _check(self.max_steps >= 0, f"max_steps must be 0 (use epochs) or a number of optimizer steps, got {self.max_steps}.")
        _check(0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got {self.learning_rate}.")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}.")
        _check(not self.cod or self.batch_size >= 2, f"With CoD a batch holds whole pairs: batch_size must be at least 2, got {self.batch_size}.")
        _check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        _check(self.weight_decay >= 0, f"weight_decay must be 0 or more, got {self.weight_decay}.")
        _check(self.max_length >= 8, f"max_length must be at least 8, got {self.max_length}.")
        _check(self.gradient_accumulation >= 1, f"gradient_accumulation must be at least 1, got {self.gradient_accumulation}.")
        _check(self.mixed_precision in {"no", "fp16", "bf16"}, f"mixed_precision {self.mixed_precision!r} is not no, fp16 or bf16.")
        _check(self.head in {"auto", "cls", "mean"}, f"head {self.head!r} is not auto, cls or mean.")
        _check(self.lora_r >= 1, f"lora_r must be at least 1, got {self.lora_r}.")
        _check(self.lora_alpha >= 1, f"lora_alpha must be at least 1, got {self.lora_alpha}.")
        _check(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        _check(self.eval_every >= 0, f"eval_every must be 0 (automatic) or a number of steps, got {self.eval_every}.")
        _check(self.evaluations >= 1, f"evaluations must be at least 1, got {self.evaluations}.")
        _check(self.max_validation >= 0, f"max_validation must be 0 (all) or more, got {self.max_validation}.")
        _check(
            self.selection_metric in {"accuracy", "macro_f1"},
            f"selection_metric {self.selection_metric!r} is not accuracy or macro_f1.",
        )
        _check(self.early_stopping >= 0, f"early_stopping must be 0 (off) or more, got {self.early_stopping}.")
        _check(self.checkpoint_every >= 0, f"checkpoint_every must be 0 (at evaluations) or more, got {self.checkpoint_every}.")
        _check(self.ce_label in {"gold", "teacher"}, f"ce_label {self.ce_label!r} is not gold or teacher.")
        _check(self.eval_batch_size >= 1, f"eval_batch_size must be at least 1, got {self.eval_batch_size}.")
        _check(
            not (self.method == "ce" and self.ce_label == "teacher"),
            "method 'ce' trains without the teacher, so ce_label must be 'gold': use kd for teacher labels.",
        )

    @property
    def label(self) -> str:
        """Short method name used in tables: kd, kd+cod, lwd+cod, ce."""
        return f"{self.method}+cod" if self.cod else self.method


SWEEP_METHODS = ("ce", "kd", "lwd", "ce+cod", "kd+cod", "lwd+cod", "setfit")


@dataclass(frozen=True)
class SweepConfig(_Serialisable):
    """A budget-matched grid of distillation runs (`cod.sweep`): every method x k x seed on one task.

    `distill` holds DistillConfig overrides shared by every cell (epochs, learning_rate, ...); method, cod, k and
    seed come from the grid. `test_limit` evaluates on a fixed seeded subset of the test split (quick runs only)."""

    task: str = "demo"
    ks: tuple[int, ...] = (8, 16, 32, 64)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    methods: tuple[str, ...] = ("kd", "kd+cod", "lwd", "lwd+cod", "ce")
    out: str = "runs/sweep"
    teacher: str = "demo"
    student: str = "demo"
    proposer: str = "lexical"  # lexical | llm: makes the counterfactuals of each draw's real half (cached)
    distill: dict[str, Any] = field(default_factory=dict)
    probe_pairs: int = 64  # held-out (test) pairs for boundary fidelity; 0: off
    test_limit: int = 0  # 0: the whole test split
    figures: bool = True  # boundary view and edit paths for the first seed's cells
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("ks", "seeds", "methods"):
            value = getattr(self, name)
            value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
            object.__setattr__(self, name, value)  # lists from JSON or the CLI become tuples
            _check(len(value) > 0, f"{name} is empty: give at least one value.")
            _check(len(set(value)) == len(value), f"{name} {list(value)} repeats a value.")
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        bad = [m for m in self.methods if m not in SWEEP_METHODS]
        _check(not bad, f"Unknown method(s) {bad}: choose from {list(SWEEP_METHODS)}.")
        _check(all(k >= 2 for k in self.ks), f"every k must be at least 2, got {list(self.ks)}.")
        odd = [k for k in self.ks if k % 2]
        _check(
            not odd or not any(m.endswith("+cod") for m in self.methods),
            f"k {odd} is odd: CoD splits k into k/2 real examples and k/2 counterfactuals, so use even k.",
        )
        _check(self.proposer in {"lexical", "llm"}, f"proposer {self.proposer!r} is not lexical or llm.")
        _check(self.probe_pairs >= 0, f"probe_pairs must be 0 (off) or more, got {self.probe_pairs}.")
        _check(self.test_limit >= 0, f"test_limit must be 0 (all) or more, got {self.test_limit}.")
        _check(0 < self.confidence < 1, f"confidence must be in (0, 1), got {self.confidence}.")
        grid = {"method", "cod", "k", "seed"} & set(self.distill)
        _check(not grid, f"distill settings {sorted(grid)} come from the sweep grid: set them with ks / seeds / methods.")
        self.distill_config("kd", 8, 0)  # validates the overrides (unknown names, bad values) now

    def distill_config(self, method: str, k: int, seed: int) -> DistillConfig:
        """The DistillConfig of one cell (`kd+cod` -> method kd with cod on)."""
        base, _, cod = method.partition("+")
        return DistillConfig.from_dict({**self.distill, "method": base, "cod": bool(cod), "k": k, "seed": seed})
