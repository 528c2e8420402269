"""Public mode: the app serves anonymous visitors (a public Hugging Face Space), so the owner's secrets, each visitor's
data and the process's memory need guarding. On when `COD_PUBLIC=1`, or by default when `SPACE_ID` is set (Spaces
set it); off locally, where one person uses the app and today's conveniences stay.

The limits are read from the environment once per call, so the owner configures them without code:

| variable | default | what it bounds |
|---|---|---|
| COD_PUBLIC | on with SPACE_ID | public mode itself (`1` / `0` overrides) |
| COD_ALLOWED_HOSTS | | hosts (`host`, `host:port`) a visitor's URL may name even when private (an owner's server) |
| COD_ALLOWED_MODELS | | models besides `demo` a visitor may load (comma-separated Hub ids or paths) |
| COD_MAX_MODEL_PARAMS | 200e6 | parameters of any model loaded in public mode, read from its config first |
| COD_ALLOW_OWNER_HF_TOKEN | 0 | model loads may use the owner's HF_TOKEN (private or gated models) |
| COD_MAX_K / _EPOCHS / _STEPS / _BATCH / _CANDIDATES | 64 / 100 / 2000 / 64 / 10 | request sizes |
| COD_MAX_QUEUED | 3 | jobs a visitor may have waiting behind their running one |
| COD_RETENTION_HOURS | 24 | anonymous visitors' run folders, exports and store rows older than this are removed |
| COD_JOB_PROCESS | public mode, not ZeroGPU | distillations run in a child process at nice 19, one torch thread |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from cod.errors import ConfigError

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def public_mode() -> bool:
    """True when the app serves untrusted visitors: COD_PUBLIC=1, or on a Space (SPACE_ID) unless COD_PUBLIC=0."""
    return _flag("COD_PUBLIC", default=bool(os.environ.get("SPACE_ID")))


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (SPACES_ZERO_GPU), whose GPU is lent to the app's own process inside Gradio events."""
    return _flag("SPACES_ZERO_GPU", False)


def jobs_in_child() -> bool:
    """Whether distillations run in a low-priority child process (COD_JOB_PROCESS; on in public mode, where live
    predictions of many visitors must not wait behind them). Off on ZeroGPU (see `zero_gpu`)."""
    if zero_gpu():
        return False
    return _flag("COD_JOB_PROCESS", default=public_mode())


def _names(name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in os.environ.get(name, "").split(",") if p.strip())


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number: set it to a positive number or unset it.") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive: set it to a positive number or unset it.")
    return value


@dataclass(frozen=True)
class Limits:
    """What one visitor may ask of a public app (see the module docstring for the variables)."""

    allowed_models: tuple[str, ...] = ()
    max_model_params: int = 200_000_000
    owner_hf_token: bool = False
    max_k: int = 64
    max_epochs: int = 100
    max_steps: int = 2000
    max_batch: int = 64
    max_candidates: int = 10
    max_queued: int = 3
    retention_hours: float = 24.0

    @classmethod
    def from_env(cls) -> Limits:
        """The limits as the owner set them in the environment (defaults otherwise)."""
        d = cls()
        return cls(
            allowed_models=_names("COD_ALLOWED_MODELS"),
            max_model_params=int(_number("COD_MAX_MODEL_PARAMS", d.max_model_params)),
            owner_hf_token=_flag("COD_ALLOW_OWNER_HF_TOKEN", False),
            max_k=int(_number("COD_MAX_K", d.max_k)),
            max_epochs=int(_number("COD_MAX_EPOCHS", d.max_epochs)),
            max_steps=int(_number("COD_MAX_STEPS", d.max_steps)),
            max_batch=int(_number("COD_MAX_BATCH", d.max_batch)),
            max_candidates=int(_number("COD_MAX_CANDIDATES", d.max_candidates)),
            max_queued=int(_number("COD_MAX_QUEUED", d.max_queued)),
            retention_hours=_number("COD_RETENTION_HOURS", d.retention_hours),
        )

    def check(self, **values: int | float | None) -> None:
        """Refuse a request larger than its bound: `check(k=16, epochs=5)` (None values are not checked)."""
        bounds = {
            "k": self.max_k,
            "epochs": self.max_epochs,
            "steps": self.max_steps,
            "batch_size": self.max_batch,
            "candidates": self.max_candidates,
        }
        for name, value in values.items():
            if value is None:
                continue
            bound = bounds[name]
            if value > bound:
                raise ConfigError(
                    f"{name}={value} is above this public app's limit of {bound}: choose {bound} or less "
                    f"(the owner sets it with COD_MAX_{'BATCH' if name == 'batch_size' else name.upper()})."
                )

    def model_token(self) -> bool | None:
        """The `token` argument for model loads: False (never the owner's HF_TOKEN) unless the owner allows it."""
        return None if self.owner_hf_token else False


def hub_token_for_load() -> bool | None:
    """`token=` for `from_pretrained` and Hub reads: False in public mode (unless allowed), None locally."""
    return Limits.from_env().model_token() if public_mode() else None


_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)(?:[^\s'\"/<>]+/)+([^\s'\"/<>]*)")


def hide_paths(message: str) -> str:
    """The message with server paths cut to their last part (`/srv/app/runs/rt-1/model` -> `.../model`); URLs stay."""
    return _PATH.sub(lambda m: f".../{m.group(1)}", message)
