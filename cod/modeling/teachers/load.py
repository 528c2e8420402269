"""Which kind of teacher a name means, and loading the LLM kinds (`cod.modeling.loading.load_teacher` calls this).

- `demo-llm`, a `.gguf` file, or a checkpoint whose architectures are all `...ForCausalLM`: a causal-LM teacher;
- `api:MODEL`: a chat model behind an OpenAI-compatible endpoint (`--llm-base-url` / COD_LLM_BASE_URL);
- anything else: a sequence classifier (today's teacher). `kind` overrides the guess.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cod import DEMO
from cod.config import TEACHER_KINDS
from cod.errors import ConfigError, ModelError
from cod.modeling.teachers.api import API_PREFIX, APISettings, APITeacher
from cod.modeling.teachers.prompt import Prompt

log = logging.getLogger(__name__)

KINDS = TEACHER_KINDS
DEFAULT_LABELS = ("negative", "positive")  # the demo task's, for an LLM teacher asked without any


@dataclass(frozen=True)
class LLMTeacherOptions:
    """How an LLM teacher (causal LM or API) is prompted and scored; classifiers ignore these."""

    label_words: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (label, words) pairs; unnamed labels use their name
    template: str | None = None  # None: the default prompt (cod.modeling.teachers.prompt.DEFAULT_TEMPLATE)
    system: str = ""
    calibrate: bool | None = None  # contextual calibration on content-free inputs (None: off, or the validated choice)
    chat_template: str = "auto"  # causal LMs: auto | on | off
    low_mass: float = 0.1  # warn when the labels get less of the answer than this
    api: APISettings = field(default_factory=APISettings)

    @classmethod
    def make(
        cls, label_words: Mapping[str, Sequence[str]] | None = None, api: APISettings | None = None, **kw
    ) -> LLMTeacherOptions:
        """Options from a plain {label: [words]} mapping."""
        words = tuple((str(k), tuple(v)) for k, v in (label_words or {}).items())
        return cls(label_words=words, api=api or APISettings(), **kw)

    def prompt(self, label_names: Sequence[str]) -> Prompt:
        """The prompt for these labels."""
        return Prompt.build(label_names, dict(self.label_words), self.template, self.system)

    def for_model(self, name: str, label_names: Sequence[str]) -> LLMTeacherOptions:
        """These options with what they leave unset taken from the embedded LLM `name`'s validated prompt (when it
        was chosen for these labels): template (with its chat-template choice), label words, calibration."""
        from cod.modeling.demo.llm import validated_prompt

        chosen = validated_prompt(name, label_names)
        if chosen is None:
            return replace(self, calibrate=bool(self.calibrate))
        changes: dict = {"calibrate": chosen.calibrate if self.calibrate is None else self.calibrate}
        if self.template is None:
            changes["template"] = chosen.template
            if self.chat_template == "auto":
                changes["chat_template"] = chosen.chat_template
        if not self.label_words:
            names = {n.lower(): n for n in label_names}  # the words are keyed by the teacher's own spelling
            changes["label_words"] = tuple((names[label], words) for label, words in chosen.label_words)
        return replace(self, **changes)

    def key(self) -> str:
        """A stable text of the options, for process-level caches."""
        return json.dumps(asdict(self), sort_keys=True)


def teacher_kind(name: str, kind: str = "auto", trust_remote_code: bool = False) -> str:
    """The kind of teacher `name` means (see the module docstring)."""
    from cod.modeling.demo.llm import is_embedded_llm

    if kind not in KINDS:
        raise ConfigError(f"Teacher kind {kind!r} is not one of {', '.join(KINDS)}.")
    name = name.strip()
    if kind != "auto":
        return kind
    if name.startswith(API_PREFIX):
        return "api"
    if is_embedded_llm(name) or name.lower().endswith(".gguf"):
        return "causal-lm"
    if name == DEMO:
        return "classifier"
    return "causal-lm" if _is_causal_lm_only(name, trust_remote_code) else "classifier"


def _is_causal_lm_only(name: str, trust_remote_code: bool) -> bool:
    """Whether a checkpoint's config names only causal-LM architectures (read locally, or from the Hub online)."""
    path = Path(name).expanduser()
    try:
        if path.is_dir():
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            archs = tuple(config.get("architectures") or ())
        else:
            archs = _hub_architectures(name, trust_remote_code)
    except Exception:  # unreadable or offline: the classifier loader reports the real problem
        return False
    return bool(archs) and all(a.endswith("ForCausalLM") for a in archs)


@functools.lru_cache(maxsize=64)
def _hub_architectures(name: str, trust_remote_code: bool) -> tuple[str, ...]:
    """A Hub checkpoint's architectures, asked once per process (teachers are looked up by name on every keystroke)."""
    from transformers import AutoConfig

    return tuple(AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code).architectures or ())


def load_llm_teacher(
    name: str,
    kind: str,
    label_names: Sequence[str] | None = None,
    options: LLMTeacherOptions | None = None,
    device=None,
    dtype: str = "auto",
    max_length: int = 128,
    batch_size: int = 8,
    trust_remote_code: bool = False,
):
    """A causal-LM or API teacher for `label_names` (default negative/positive, the demo task's)."""
    if label_names is None:
        log.info("No label names given for the LLM teacher %s: using %s.", name, list(DEFAULT_LABELS))
    options = (options or LLMTeacherOptions()).for_model(name, label_names or DEFAULT_LABELS)
    prompt = options.prompt(label_names or DEFAULT_LABELS)
    if kind == "api":
        model = name.strip()[len(API_PREFIX) :] if name.strip().startswith(API_PREFIX) else name.strip()
        if not model:
            raise ConfigError(f"{name!r} names no model: write api:MODEL, e.g. api:gpt-4o-mini.")
        return APITeacher(model, prompt, options.api, calibrate=options.calibrate, low_mass=options.low_mass)
    if kind != "causal-lm":
        raise ModelError(f"load_llm_teacher loads causal-lm and api teachers, not {kind!r}.")
    from cod.modeling.demo.llm import DEMO_LLM
    from cod.modeling.runtime import check_public_model, pick_device, resolve_dtype

    if name.strip() != DEMO_LLM:  # public mode: only the embedded LLM and the owner's allowed models load
        check_public_model(name)
    from cod.modeling.teachers.causal_lm import CausalLMTeacher, load_causal_lm

    device = pick_device(device) if isinstance(device, str | type(None)) else device
    model, tokenizer, identity = load_causal_lm(name, device, resolve_dtype(dtype, device), trust_remote_code)
    return CausalLMTeacher(
        model,
        tokenizer,
        prompt,
        name=name.strip(),
        identity=identity,
        calibrate=options.calibrate,
        max_length=max_length,
        batch_size=batch_size,
        chat_template=options.chat_template,
        low_mass=options.low_mass,
    )
