"""Where and how models run, shared by every loader (classifiers, students, LLM and API teachers): the device and
dtype, the Hub access rules of public mode, and the error for a model that failed to load."""

from __future__ import annotations

import os

from cod import DEMO
from cod.errors import ModelError

DTYPES = ("auto", "float32", "float16", "bfloat16")


def pick_device(preferred: str | None = None):
    """The torch device to run on: `preferred` if given ("cpu", "cuda", "cuda:1", "mps"), else cuda > mps > cpu."""
    import torch

    if preferred in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError) as err:
        raise ModelError(
            f"Device {preferred!r} is not valid: use cpu, cuda, cuda:N or mps (or leave it empty)."
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"Device {preferred!r} was asked for but no CUDA GPU is available here: use cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelError(
                f"Device {preferred!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)."
            )
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError(f"Device {preferred!r} was asked for but Apple MPS is not available here: use cpu.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ModelError(f"Device {preferred!r} is not supported: use cpu, cuda, cuda:N or mps.")
    return device


def resolve_dtype(dtype: str, device):
    """The torch dtype for `dtype` on `device`; "auto" is float32 on CPU/MPS and bfloat16 (else float16) on CUDA."""
    import torch

    if dtype not in DTYPES:
        raise ModelError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def hub_kwargs() -> dict:
    """`from_pretrained` keywords for the Hub token: in public mode `token=False`, so a visitor's load never uses the
    owner's HF_TOKEN (private or gated models), unless the owner sets COD_ALLOW_OWNER_HF_TOKEN=1."""
    from cod.public import hub_token_for_load

    token = hub_token_for_load()
    return {} if token is None else {"token": token}


def check_public_model(name: str) -> None:
    """In public mode only `demo` and the owner's COD_ALLOWED_MODELS load (nothing is looked up for other names, so
    the answer says nothing of which server folders exist)."""
    from cod.modeling.demo.llm import DEMO_LLM
    from cod.public import Limits, public_mode

    if not public_mode() or name.strip() in (DEMO, DEMO_LLM):  # the embedded models
        return
    allowed = Limits.from_env().allowed_models
    if name.strip() not in allowed:
        listed = ", ".join(repr(a) for a in (DEMO, *allowed))
        raise ModelError(
            f"This public app loads only these models: {listed}, not {name.strip()!r}. Run CoD Studio "
            "yourself to use any Hub model or local folder (the owner can allow more with COD_ALLOWED_MODELS)."
        )


def count_parameters(config) -> int:
    """Parameters of a model built from `config`, counted on the meta device (no weights are loaded or allocated)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    with torch.device("meta"):
        try:
            model = AutoModelForSequenceClassification.from_config(config)
        except ValueError:  # no sequence-classification class for this model type
            model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def check_public_size(name: str, config) -> None:
    """In public mode a model larger than COD_MAX_MODEL_PARAMS is refused from its config, before any weights load."""
    from cod.public import Limits, public_mode

    if not public_mode():
        return
    cap = Limits.from_env().max_model_params
    n = count_parameters(config)
    if n > cap:
        raise ModelError(
            f"{name!r} has {n / 1e6:.1f}M parameters, above this public app's limit of {cap / 1e6:.0f}M "
            "(COD_MAX_MODEL_PARAMS): choose a smaller model or 'demo'."
        )


def load_error(name: str, err: Exception, what: str = "model") -> ModelError:
    """The error for a model that failed to load: what failed, and what to do (offline or a wrong id)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or "couldn't connect" in str(err).lower()
    hint = (
        " This machine is offline (or the Hub is unreachable): download the model on a connected machine and pass its "
        "local folder, or use 'demo'."
        if offline
        else " Check the id (e.g. 'distilbert/distilbert-base-uncased-finetuned-sst-2-english'), "
        "or pass a local folder, or 'demo'."
    )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelError(f"The {what} {name!r} could not be loaded ({first}).{hint}")
