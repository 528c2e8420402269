"""Models: loading teachers and students by Hub id, path or `demo`; heads; scoring; batched inference; the embedded
demo models.

The names below are imported on first use (PEP 562), so `cod.modeling.demo` and other light submodules can be used
without importing torch (`cod teacher build-demo` on an assembled teacher answers in a fraction of a second).
"""

import importlib

_EXPORTS = {
    "Teacher": "cod.modeling.scoring",
    "check_labels": "cod.modeling.loading",
    "length_sorted_batches": "cod.modeling.inference",
    "load_classifier": "cod.modeling.loading",
    "load_student": "cod.modeling.loading",
    "load_teacher": "cod.modeling.loading",
    "predict_logits": "cod.modeling.inference",
    "softmax": "cod.modeling.inference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The exported name from its submodule, imported now."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
