"""Where CoD keeps its files: `$COD_HOME` (default `~/.cache/cod`)."""

import os
from pathlib import Path


def cod_home() -> Path:
    """The root folder for caches, built models and the project store."""
    home = Path(os.environ.get("COD_HOME") or Path.home() / ".cache" / "cod").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def cache_dir(name: str) -> Path:
    """A named sub-folder of `$COD_HOME/cache`, created on demand."""
    path = cod_home() / "cache" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Where built models (the demo teacher) are saved."""
    path = cod_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
