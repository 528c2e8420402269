"""Settings of every component: frozen dataclasses, validated in `__post_init__` with errors that name the value.

Each class is owned by one module (named in its docstring); `to_dict`/`from_dict` give the JSON saved beside results.
Every field carries its help in `field(metadata={"help": ...})` (and, for a closed set, `"choices"`): the command line
flags are generated from it (`cod.cli._common.add_config_flags`), so a new field is a new flag with its help.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cod.errors import ConfigError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _env_number(name: str, default: float) -> float:
    """A positive number from the environment (an owner's override), else `default`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        message = f"The environment variable {name}={raw!r} is not a number: set it to e.g. {default:g}."
        raise ConfigError(message) from None
    _check(value > 0 and math.isfinite(value), f"The environment variable {name}={raw!r} must be a positive number.")
    return value


class _Serialisable:
    # Keys of settings saved under an older name (config.json of earlier runs) -> their name now.
    _renamed: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of the settings."""
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from a dict, rejecting unknown keys with the list of known ones."""
        d = {cls._renamed.get(key, key): value for key, value in d.items()}
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        _check(not unknown, f"Unknown {cls.__name__} setting(s) {unknown}: known settings are {sorted(known)}.")
        return cls(**d)

    def replace(self, **changes):
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def _check_choices(self) -> None:
        # One check for every closed-set field: the allowed values live once, in the field's metadata.
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ConfigError(f"{f.name} {value!r} is not one of {', '.join(map(str, choices))}.")


@dataclass(frozen=True)
class DataConfig(_Serialisable):
    """How `cod.data.readers` reads files: column mapping, label set, limits and what to drop."""

    text_column: str | None = field(
        default=None, metadata={"help": "column of the text; None: guessed from common names (text, review, ...)"}
    )
    text_pair_column: str | None = field(
        default=None,
        metadata={"help": "column of a pair's second text; None: guessed only for known pairs (sentence1/sentence2)"},
    )
    label_column: str | None = field(
        default=None, metadata={"help": "column of the label; None: guessed from common names (label, sentiment, ...)"}
    )
    label_names: tuple[str, ...] | None = field(
        default=None, metadata={"help": "fixes the label order; integer labels then index into it"}
    )
    split: str | None = field(
        default=None, metadata={"help": "split of a Hub dataset or a saved DatasetDict; None: train"}
    )
    subset: str | None = field(
        default=None, metadata={"help": "configuration of a Hub dataset, e.g. sst2 for nyu-mll/glue"}
    )
    max_file_mb: float = field(
        default_factory=lambda: _env_number("COD_MAX_FILE_MB", 200.0),
        metadata={
            "help": "refuse files larger than this on disk, in MB (env COD_MAX_FILE_MB; also the app's "
            "upload limit)"
        },
    )
    max_rows: int = field(
        default_factory=lambda: int(_env_number("COD_MAX_ROWS", 100_000)),
        metadata={
            "help": "refuse sources with more data rows than this (env COD_MAX_ROWS); Parquet and `datasets` "
            "folders are checked from their metadata before any row is read"
        },
    )
    max_decompressed_mb: float = field(
        default_factory=lambda: _env_number("COD_MAX_DECOMPRESSED_MB", 200.0),
        metadata={
            "help": "refuse sources whose data is larger than this once decompressed, in MB "
            "(env COD_MAX_DECOMPRESSED_MB): .gz/.bz2/.xz are read through a counter that stops there; "
            "Parquet cells are measured before they are decoded"
        },
    )
    max_chars: int = field(default=2000, metadata={"help": "longer texts are truncated with a warning"})
    drop_duplicates: bool = field(default=False, metadata={"help": "drop repeated texts (else kept and reported)"})
    drop_rare_labels: bool = field(
        default=False, metadata={"help": "drop labels seen once among many (otherwise an error: likely a typo)"}
    )

    def __post_init__(self) -> None:
        _check(self.max_file_mb > 0, f"max_file_mb must be positive, got {self.max_file_mb}.")
        _check(self.max_rows >= 1, f"max_rows must be at least 1, got {self.max_rows}.")
        _check(self.max_decompressed_mb > 0, f"max_decompressed_mb must be positive, got {self.max_decompressed_mb}.")
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

    name: str = field(default="demo", metadata={"help": "a Hub id, a local folder, or demo"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:N or mps; None: cuda > mps > cpu"})
    dtype: str = field(
        default="auto", metadata={"help": "weights' precision", "choices": ("auto", "float32", "float16", "bfloat16")}
    )
    max_length: int = field(default=128, metadata={"help": "tokens per text; longer texts are truncated"})
    batch_size: int = field(default=32, metadata={"help": "texts per forward pass"})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "run the model repository's own code (stays off unless you turn it on)"}
    )
    head: str = field(
        default="auto",
        metadata={
            "help": "students' pooling: auto (mean for sentence-transformers checkpoints, else cls), cls or mean",
            "choices": ("auto", "cls", "mean"),
        },
    )

    def __post_init__(self) -> None:
        _check(bool(self.name and self.name.strip()), "A model name is required: a Hub id, a local path, or 'demo'.")
        self._check_choices()
        _check(self.max_length >= 8, f"max_length must be at least 8, got {self.max_length}.")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}.")
        _check(
            self.device is None or self.device.split(":")[0] in {"cpu", "cuda", "mps"},
            f"device {self.device!r} is not cpu, cuda, cuda:N or mps.",
        )


# The proposer the app, `cod generate` and sweeps use unless told otherwise (they read it here, nowhere else). The
# offline lexical search: on the demo task it flips the teacher far more often than the embedded LLM (SmolLM2-135M),
# which rarely returns a usable minimal rewrite (bench/bench_proposers.py; figures in the README).
DEFAULT_PROPOSER = "lexical"
# What a teacher name can be told to be (`--teacher-kind`); here, not in cod.modeling, so the CLI parser stays light.
TEACHER_KINDS = ("auto", "classifier", "causal-lm", "api")


@dataclass(frozen=True)
class LexicalConfig(_Serialisable):
    """The offline teacher-guided search (`cod.counterfactuals.lexical`)."""

    max_edits: int = field(default=3, metadata={"help": "word edits per counterfactual"})
    beam_width: int = field(default=4, metadata={"help": "search states kept at each depth"})
    positions: int = field(default=8, metadata={"help": "most salient word positions tried"})
    substitutes: int = field(default=4, metadata={"help": "candidate words per position"})
    expansions: int = field(default=8, metadata={"help": "best single edits each beam state is extended with"})
    wordnet: bool = field(default=True, metadata={"help": "use WordNet antonyms when a WordNet database is installed"})
    shrink: bool = field(default=True, metadata={"help": "revert edits that are not needed for the flip"})
    seed: int = field(default=0, metadata={"help": "seed of the search's tie-breaking"})
    fluency_model: str = field(
        default="demo-llm", metadata={"help": "causal LM that scores and ranks edits by fluency ('': none, no LM)"}
    )
    min_fluency_nats: float = field(
        default=-25.0,
        metadata={"help": "a flip losing more SLOR than this (nats) is kept only when no flip of its size loses less"},
    )
    screen_precision: str = field(
        default="auto",
        metadata={
            "help": "the search's teacher forwards: auto (a bfloat16 copy on CPUs with AMX/AVX512-BF16; near-ties and "
            "the counterfactual kept are scored by the teacher as loaded), bfloat16, or teacher (all as loaded)",
            "choices": ("auto", "bfloat16", "teacher"),
        },
    )

    def __post_init__(self) -> None:
        for name in ("max_edits", "beam_width", "positions", "substitutes", "expansions"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}.")
        self._check_choices()


@dataclass(frozen=True)
class LLMConfig(_Serialisable):
    """An OpenAI-compatible endpoint (`cod.counterfactuals.llm`). The key is never stored: it comes from the
    environment (`COD_LLM_API_KEY` or `OPENAI_API_KEY`) or is passed at call time."""

    base_url: str | None = field(
        default_factory=lambda: os.environ.get("COD_LLM_BASE_URL") or None,
        metadata={"help": "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 [$COD_LLM_BASE_URL]"},
    )
    model: str = field(
        default_factory=lambda: os.environ.get("COD_LLM_MODEL", "gpt-4o-mini"),
        metadata={"help": "model name at the endpoint [$COD_LLM_MODEL or gpt-4o-mini]"},
    )
    task: str = field(
        default="auto",
        metadata={
            "help": "prompt family; auto: chosen from the label names",
            "choices": ("auto", "sentiment", "grammaticality", "generic"),
        },
    )
    task_description: str = field(default="", metadata={"help": "what the classes mean, put at the top of the prompt"})
    candidates: int = field(default=3, metadata={"help": "rewrites asked for per request (at most 20)"})
    rounds: int = field(
        default=2, metadata={"help": "requests per example: the first, then feedback rounds while nothing flips"}
    )
    concurrency: int = field(default=4, metadata={"help": "examples in flight at once"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature, within [0, 2]"})
    max_tokens: int = field(default=256, metadata={"help": "longest answer per request, in tokens"})
    timeout_s: float = field(default=30.0, metadata={"help": "seconds per request"})
    max_retries: int = field(
        default=3, metadata={"help": "retries per request, on 429 / 5xx / timeouts / connection errors"}
    )
    retry_delay_s: float = field(
        default=1.0, metadata={"help": "first backoff delay in seconds; doubles on each retry"}
    )
    max_retry_after_s: float = field(
        default=60.0, metadata={"help": "a longer Retry-After from the server is cut to this many seconds"}
    )

    def __post_init__(self) -> None:
        _check(bool(self.model), "An LLM model name is required (set --llm-model or COD_LLM_MODEL).")
        self._check_choices()
        for name in ("candidates", "rounds", "concurrency", "max_tokens"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}.")
        _check(self.candidates <= 20, f"candidates must be at most 20 per request, got {self.candidates}.")
        _check(0.0 <= self.temperature <= 2.0, f"temperature must be within [0, 2], got {self.temperature}.")
        _check(self.timeout_s > 0, f"timeout_s must be positive, got {self.timeout_s}.")
        _check(
            isinstance(self.max_retries, int) and self.max_retries >= 0,
            f"max_retries must be 0 or more, got {self.max_retries!r}.",
        )
        _check(self.retry_delay_s >= 0, f"retry_delay_s must be 0 or more, got {self.retry_delay_s}.")
        _check(self.max_retry_after_s >= 0, f"max_retry_after_s must be 0 or more, got {self.max_retry_after_s}.")
        _check(
            self.base_url is None or self.base_url.startswith(("http://", "https://")),
            f"base_url {self.base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8080/v1).",
        )


@dataclass(frozen=True)
class DistillConfig(_Serialisable):
    """One distillation run (`cod.distill.trainer`). Paper defaults: alpha 20, T 2."""

    _renamed: ClassVar[dict[str, str]] = {"early_stopping": "patience"}

    method: str = field(
        default="kd",
        metadata={"help": "ce (no teacher), kd or lwd (kd plus layer-wise states)", "choices": ("ce", "kd", "lwd")},
    )
    cod: bool = field(
        default=False, metadata={"help": "counterfactual distillation: k/2 real examples + their k/2 counterfactuals"}
    )
    k: int = field(default=16, metadata={"help": "example budget"})
    seed: int = field(default=0, metadata={"help": "seed of the draw and of training"})
    alpha: float = field(default=20.0, metadata={"help": "weight of the KD term"})
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature of the KD term"})
    beta: float = field(default=1.0, metadata={"help": "weight of the LWD (layer-wise) term"})
    lwd_mode: str = field(
        default="auto",
        metadata={
            "help": "LWD states: token (same tokenizer), pooled, or auto (token when the tokenizers agree)",
            "choices": ("auto", "token", "pooled"),
        },
    )
    ce_on_counterfactuals: bool = field(
        default=True, metadata={"help": "train counterfactuals with CE on the teacher's argmax too (else KL only)"}
    )
    keep_unflipped: bool = field(default=False, metadata={"help": "keep counterfactuals the teacher did not flip"})
    cod_per_example: int = field(
        default=0,
        metadata={"help": "0: the paper's budget (k/2 real + one counterfactual each); m: all k real + up to m each"},
    )
    epochs: int = field(default=75, metadata={"help": "passes over the training set (unless max_steps is set)"})
    max_steps: int = field(
        default=0, metadata={"help": "optimizer steps for the whole run, overriding epochs; 0: epochs x batches"}
    )
    learning_rate: float = field(default=6e-5, metadata={"help": "peak AdamW learning rate", "aliases": ("--lr",)})
    batch_size: int = field(default=8, metadata={"help": "examples per mini-batch (a CoD pair stays in one batch)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps with a linear warm-up"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases and norms)"})
    max_length: int = field(default=128, metadata={"help": "tokens per training text"})
    gradient_accumulation: int = field(
        default=1, metadata={"help": "mini-batches per optimizer step", "aliases": ("--grad-accum",)}
    )
    mixed_precision: str = field(
        default="no",
        metadata={"help": "GPU only: CPU runs in float32 whatever is asked", "choices": ("no", "fp16", "bf16")},
    )
    eval_every: int = field(
        default=0, metadata={"help": "steps between held-out evaluations; 0: spread `evaluations` over the run"}
    )
    evaluations: int = field(
        default=10,
        metadata={"help": "held-out evaluations per run when eval_every is 0 (kept few: they dominate on CPU)"},
    )
    max_validation: int = field(
        # 500 held-out texts pin an accuracy near 0.7 to +-4 points (95% Wilson interval; 200 would give +-6.3) at
        # a bounded cost per evaluation whatever the size of the validation file.
        default=500,
        metadata={
            "help": "evaluate on the first N validation examples only (500: an accuracy near 0.7 known to within "
            "4 points, 95% interval); 0: all of them"
        },
    )
    selection_metric: str = field(
        default="accuracy",
        metadata={"help": "held-out metric that picks the checkpoint", "choices": ("accuracy", "macro_f1")},
    )
    patience: int = field(
        default=0,
        metadata={"help": "stop after N evaluations without improvement; 0: off", "aliases": ("--early-stopping",)},
    )
    checkpoint_every: int = field(
        default=0, metadata={"help": "steps between resumable checkpoints in the run folder; 0: at every evaluation"}
    )
    resume: bool = field(default=True, metadata={"help": "continue from the run folder's checkpoint of the same run"})
    head: str = field(
        default="auto",
        metadata={
            "help": "student pooling: auto, cls or mean (a causal-LM student: cls reads the last real token)",
            "choices": ("auto", "cls", "mean"),
        },
    )
    ce_label: str = field(
        default="gold",
        metadata={
            "help": "CE label of the real examples: gold or teacher (counterfactuals always use the teacher's)",
            "choices": ("gold", "teacher"),
        },
    )
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (merged into the saved model)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    eval_batch_size: int = field(default=64, metadata={"help": "texts per forward pass when evaluating"})
    tracker: str = field(
        default="", metadata={"help": "an accelerate tracker (trackio, tensorboard, wandb ...) when installed; '' off"}
    )

    def __post_init__(self) -> None:
        self._check_choices()
        _check(self.k >= 2, f"k must be at least 2 (one example per class), got {self.k}.")
        _check(
            not self.cod or self.cod_per_example or self.k % 2 == 0,
            f"With CoD, k must be even (k/2 real + k/2 counterfactuals), got {self.k}.",
        )
        _check(
            self.cod_per_example >= 0,
            f"cod_per_example must be 0 (k/2 real + one each) or more, got {self.cod_per_example}.",
        )
        _check(self.alpha >= 0, f"alpha must be 0 or more, got {self.alpha}.")
        _check(self.temperature > 0, f"temperature must be positive, got {self.temperature}.")
        _check(self.beta >= 0, f"beta must be 0 or more, got {self.beta}.")
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}.")
        _check(
            self.max_steps >= 0,
            f"max_steps must be 0 (use epochs) or a number of optimizer steps, got {self.max_steps}.",
        )
        _check(0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got {self.learning_rate}.")
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}.")
        _check(
            not self.cod or self.batch_size >= 2,
            f"With CoD a batch holds whole pairs: batch_size must be at least 2, got {self.batch_size}.",
        )
        _check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        _check(self.weight_decay >= 0, f"weight_decay must be 0 or more, got {self.weight_decay}.")
        _check(self.max_length >= 8, f"max_length must be at least 8, got {self.max_length}.")
        _check(
            self.gradient_accumulation >= 1,
            f"gradient_accumulation must be at least 1, got {self.gradient_accumulation}.",
        )
        _check(self.lora_r >= 1, f"lora_r must be at least 1, got {self.lora_r}.")
        _check(self.lora_alpha >= 1, f"lora_alpha must be at least 1, got {self.lora_alpha}.")
        _check(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}.")
        _check(self.eval_every >= 0, f"eval_every must be 0 (automatic) or a number of steps, got {self.eval_every}.")
        _check(self.evaluations >= 1, f"evaluations must be at least 1, got {self.evaluations}.")
        _check(self.max_validation >= 0, f"max_validation must be 0 (all) or more, got {self.max_validation}.")
        _check(self.patience >= 0, f"patience must be 0 (off) or more evaluations, got {self.patience}.")
        _check(
            self.checkpoint_every >= 0,
            f"checkpoint_every must be 0 (at evaluations) or more, got {self.checkpoint_every}.",
        )
        _check(self.eval_batch_size >= 1, f"eval_batch_size must be at least 1, got {self.eval_batch_size}.")
        _check(
            not (self.method == "ce" and self.ce_label == "teacher"),
            "method 'ce' trains without the teacher, so ce_label must be 'gold': use kd for teacher labels.",
        )

    @property
    def label(self) -> str:
        """Short method name used in tables: kd, kd+cod, lwd+cod, ce, kd+cod-m2."""
        if self.cod and self.cod_per_example:
            return f"{self.method}+cod-m{self.cod_per_example}"
        return f"{self.method}+cod" if self.cod else self.method


# `<loss>+<scheme>`: cod is the paper's budget (k/2 real + one counterfactual each); augment the equal-budget control
# (k/2 real + one random edit of the same size each, not chosen to flip); cod-mN all k real + N counterfactuals each.
SWEEP_METHODS = (
    "ce",
    "kd",
    "lwd",
    "ce+cod",
    "kd+cod",
    "lwd+cod",
    "setfit",
    "kd+augment",
    "kd+cod-m1",
    "kd+cod-m2",
    "kd+cod-m4",
)


def method_scheme(method: str) -> tuple[str, str, int]:
    """(loss, scheme, m) of a sweep method: `kd` -> (kd, '', 0), `kd+cod` -> (kd, cod, 0), `kd+augment` ->
    (kd, augment, 0), `kd+cod-m2` -> (kd, cod-m, 2)."""
    base, _, scheme = method.partition("+")
    if scheme.startswith("cod-m") and scheme[5:].isdigit():
        return base, "cod-m", int(scheme[5:])
    return base, scheme, 0


@dataclass(frozen=True)
class SweepConfig(_Serialisable):
    """A budget-matched grid of distillation runs (`cod.sweep`): every method x k x seed on one task.

    `distill` holds DistillConfig overrides shared by every cell (epochs, learning_rate, ...); method, cod, k and
    seed come from the grid. `test_limit` evaluates on a fixed seeded subset of the test split (quick runs only)."""

    task: str = field(default="demo", metadata={"help": "task name (demo, sst2, ...)"})
    ks: tuple[int, ...] = field(
        default=(8, 16, 32, 64), metadata={"help": "comma-separated budgets", "aliases": ("--k",)}
    )
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "comma-separated seeds"})
    methods: tuple[str, ...] = field(
        default=("kd", "kd+cod", "lwd", "lwd+cod", "ce"),
        metadata={"help": f"comma-separated, from: {' '.join(SWEEP_METHODS)}"},
    )
    out: str = field(default="runs/sweep", metadata={"help": "sweep folder (created; resumed when it exists)"})
    teacher: str = field(default="demo", metadata={"help": "teacher: a Hub id, a local folder or demo"})
    student: str = field(default="demo", metadata={"help": "student: a Hub id, a local folder or demo"})
    proposer: str = field(
        default=DEFAULT_PROPOSER,
        metadata={"help": "makes the counterfactuals of each real half (cached)", "choices": ("lexical", "llm")},
    )
    guide_teacher: str = field(
        default="",
        metadata={
            "help": "a cheap teacher with the same labels that the proposer searches against; the teacher then "
            "checks each counterfactual once (for LLM or API teachers; '': the teacher itself)"
        },
    )
    distill: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "DistillConfig settings shared by every cell"}
    )
    probe_pairs: int = field(default=64, metadata={"help": "held-out (test) pairs for boundary fidelity; 0: off"})
    test_limit: int = field(
        default=0, metadata={"help": "evaluate on a fixed seeded subset of N test examples (quick runs); 0: all"}
    )
    figures: bool = field(default=True, metadata={"help": "boundary view and edit paths for the first seed's cells"})
    confidence: float = field(default=0.95, metadata={"help": "level of the confidence intervals in the summary"})

    def __post_init__(self) -> None:
        for name in ("ks", "seeds", "methods"):
            value = getattr(self, name)
            value = tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else tuple(value)
            object.__setattr__(self, name, value)  # lists from JSON or the CLI become tuples
            _check(len(value) > 0, f"{name} is empty: give at least one value.")
            _check(len(set(value)) == len(value), f"{name} {list(value)} repeats a value.")
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        self._check_choices()
        bad = [m for m in self.methods if m not in SWEEP_METHODS]
        _check(not bad, f"Unknown method(s) {bad}: choose from {list(SWEEP_METHODS)}.")
        _check(all(k >= 2 for k in self.ks), f"every k must be at least 2, got {list(self.ks)}.")
        odd = [k for k in self.ks if k % 2]
        _check(
            not odd or not any(method_scheme(m)[1] in {"cod", "augment"} for m in self.methods),
            f"k {odd} is odd: CoD splits k into k/2 real examples and k/2 counterfactuals, so use even k.",
        )
        _check(self.probe_pairs >= 0, f"probe_pairs must be 0 (off) or more, got {self.probe_pairs}.")
        _check(self.test_limit >= 0, f"test_limit must be 0 (all) or more, got {self.test_limit}.")
        _check(0 < self.confidence < 1, f"confidence must be in (0, 1), got {self.confidence}.")
        grid = {"method", "cod", "k", "seed"} & set(self.distill)
        _check(
            not grid, f"distill settings {sorted(grid)} come from the sweep grid: set them with ks / seeds / methods."
        )
        self.distill_config("kd", 8, 0)  # validates the overrides (unknown names, bad values) now

    def distill_config(self, method: str, k: int, seed: int) -> DistillConfig:
        """The DistillConfig of one cell (`kd+cod` -> method kd with cod on; `kd+augment` keeps the edits the teacher
        did not flip, labelled by it; `kd+cod-m2` trains all k real examples with two counterfactuals each)."""
        base, scheme, m = method_scheme(method)
        cell = {"method": base, "cod": bool(scheme), "k": k, "seed": seed}
        if scheme == "augment":
            cell["keep_unflipped"] = True
        if scheme == "cod-m":
            cell["cod_per_example"] = m
        return DistillConfig.from_dict({**self.distill, **cell})
