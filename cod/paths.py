"""Where CoD keeps its files: `$COD_HOME` (default `~/.cache/cod`)."""

import os
import re
from datetime import datetime
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


def safe_file_stem(name: str, max_chars: int = 60) -> str:
    """`name` as one path component: letters, digits, `_ . -` only, shortened, never empty, never `..`."""
    stem = re.sub(r"[^\w.-]+", "-", name, flags=re.ASCII).strip("-.")[:max_chars].strip("-.")
    return stem or "unnamed"


def unique_folder(parent: Path, name: str) -> Path:
    """A new, empty folder `parent/NAME-YYYYmmdd-HHMMSS` (then `-2`, `-3`, ...), created here: two runs or exports
    started in the same second never share one (mkdir is atomic, so concurrent callers cannot both win a name)."""
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{safe_file_stem(name)}-{datetime.now():%Y%m%d-%H%M%S}"
    n = 1
    while True:
        path = parent / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
