"""CoD Studio: few-shot counterfactual distillation of text classifiers."""

import importlib.abc
import importlib.util
import logging
import sys

__version__ = "0.1.0"

DEMO = "demo"  # the word that means "the embedded default" wherever a model id or task is asked for


def _register_heads() -> None:
    """Register cod's mean-pooling classifier with transformers' Auto classes (importing cod.modeling.heads does it)."""
    if "cod.modeling.heads" in sys.modules:  # imported, or being imported (it registers itself as its last step)
        return
    try:
        import cod.modeling.heads  # noqa: F401
    except Exception:  # never break `import transformers` for someone who does not need our head
        logging.getLogger(__name__).warning("Could not register cod's mean-pooling head", exc_info=True)

class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    """Runs `_register_heads` right after `transformers` is first imported.

    `import cod` must make saved mean-pooling models loadable with `AutoModelForSequenceClassification`, but importing
    transformers (and torch) here would cost seconds for every `python -m cod --help`; so the registration waits for
    the first `import transformers` in the process, wherever it comes from.
    """

    _busy = False  # find_spec below asks the other finders; keep it from coming back here

    def find_spec(self, name, path=None, target=None):
        if name != "transformers" or self._busy:
            return None
        # Stay installed until transformers actually runs: libraries also call find_spec just to probe for it.
        self._busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_heads()

        spec.loader.exec_module = exec_then_register
        return spec


if "transformers" in sys.modules:
    _register_heads()
elif not any(isinstance(f, _RegisterAfterTransformers) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTransformers())
