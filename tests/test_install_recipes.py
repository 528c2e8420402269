"""The Docker image installs what `make run` installs, the same way: the same requirement files in the same order with
the same --no-deps, the same pinned uv, and torch's CPU build (no Docker daemon is needed to read the recipes)."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _makefile_recipe(target: str) -> list[str]:
    """The command lines of one Makefile rule, variables left as written."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def _dockerfile_runs() -> list[str]:
    """The Dockerfile's RUN instructions, continuation lines joined, split at `&&` into single commands."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    runs = [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]
    return [part.strip() for run in runs for part in run.split("&&")]


def _installs(commands: list[str], marker: str) -> list[tuple[str, bool]]:
    """(requirement file, --no-deps) per `-r` of every command containing `marker`, in order."""
    found = []
    for command in commands:
        if marker not in command:
            continue
        words = shlex.split(command.replace("$(", "(").replace("${", "{"), posix=False)
        files = [words[i + 1] for i, word in enumerate(words) if word == "-r"]
        found += [(f, "--no-deps" in words) for f in files]
    return found


def _variable(text: str, pattern: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} not found"
    return match.group(1)


def test_docker_installs_the_app_requirements_like_make_run():
    make = _installs(_makefile_recipe("$(APP_STAMP)"), "$(INSTALL)")
    docker = _installs(_dockerfile_runs(), "uv pip install")
    assert make == [("requirements.txt", False), ("requirements-assets.txt", True)]
    assert docker == make
    assert not any(re.match(r"(python -m )?pip3? install .*-r ", c) for c in _dockerfile_runs()), "pip, not uv"


def test_docker_pins_the_makefiles_uv_and_takes_torchs_cpu_build():
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (ROOT / "Dockerfile").read_text()
    assert _variable(dockerfile, r"^ARG UV_VERSION=(\S+)") == _variable(makefile, r"^UV_VERSION := (\S+)")
    assert "uv==$UV_VERSION" in dockerfile
    # PyPI's Linux torch is the CUDA build: the install of requirements.txt goes to PyTorch's CPU index by default.
    assert _variable(dockerfile, r"^ARG TORCH_BACKEND=(\S*)") == "cpu"
    torch_install = next(c for c in _dockerfile_runs() if "-r requirements.txt" in c)
    assert "--torch-backend $TORCH_BACKEND" in torch_install
    # A local version label (+cpu, +cu128) would defeat the backend choice: the pin names the release only.
    assert re.search(r"^torch==\d+\.\d+\.\d+$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
