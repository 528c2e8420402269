"""CoD Studio: few-shot counterfactual distillation of text classifiers.

`import cod` stays light (no torch, no transformers): heavy libraries load inside the functions that need them.
Models saved with cod's mean-pooling head load through the Auto classes after `cod.modeling.heads.register()`,
which cod's loaders call.
"""

__version__ = "0.1.0"

DEMO = "demo"  # the word that means "the embedded default" wherever a model id or task is asked for
