"""Error kinds raised by the library; the UI turns them into short messages, the CLI prints them."""


class CodError(Exception):
    """Base class: a problem the user can fix. The message says what, shows the value, and says what to do."""


class ConfigError(CodError, ValueError):
    """A setting has a value that cannot work."""


class DataError(CodError, ValueError):
    """A data file, column or label is unusable."""


class ModelError(CodError):
    """A model cannot be loaded or does not fit the data."""


class ProposerError(CodError):
    """A counterfactual proposer (LLM endpoint or offline search) failed."""


class DistillError(CodError):
    """A distillation run cannot start or continue."""


class StoreError(CodError):
    """The project store cannot read or write what was asked."""
