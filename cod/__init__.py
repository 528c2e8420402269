"""CoD Studio: few-shot counterfactual distillation of text classifiers."""

__version__ = "0.1.0"

DEMO = "demo"  # the word that means "the embedded default" wherever a model id or task is asked for
