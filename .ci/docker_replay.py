"""Replays the Dockerfile's build on a machine without Docker, the closest check short of building the image.

ARG, ENV, WORKDIR, COPY and RUN are carried out in order, the image's absolute paths (/opt, /app, /data, /home,
/root) mapped under ROOT, each RUN through /bin/sh -c in a clean environment (no pip.conf; this machine's Python 3.11
stands in for the base image), timed. RUN's --mount options are dropped (no cache is shared: a cold build); FROM,
EXPOSE and CMD are printed, not run; USER only switches HOME (no user is created, the replay runs as whoever calls it).
It writes ROOT/env.sh, the image's environment, to start the CMD with.

    python .ci/docker_replay.py . /tmp/image-root [--build-arg KEY=VALUE ...] [--dry]
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

IMAGE_PREFIXES = ("/opt", "/app", "/data", "/home", "/root")


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, comments dropped and continuation lines joined."""
    out, pending = [], ""
    for raw in dockerfile.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        op, _, rest = (pending + line).strip().partition(" ")
        out.append((op.upper(), rest.strip()))
        pending = ""
    return out


def mapped(text: str, root: Path) -> str:
    """`text` with the image's absolute paths moved under `root`."""
    for prefix in IMAGE_PREFIXES:
        text = re.sub(rf"(?<![\w./-]){re.escape(prefix)}(?=[/\s:\"']|$)", str(root) + prefix, text)
    return text


def expanded(text: str, variables: dict) -> str:
    """`$NAME` and `${NAME}` replaced by their values (empty when unset), as Docker does in ENV."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), ""), text)


def clean_environment(root: Path) -> dict:
    """What a RUN sees: a minimal environment, this Python first on PATH, no pip.conf."""
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env["HOME"] = str(root / "root")
    env["PIP_CONFIG_FILE"] = os.devnull
    # This machine's TLS goes through a proxy with its own CA: keep the variables naming it (not part of the image).
    env.update({k: v for k, v in os.environ.items() if re.search(r"CERT|SSL|CA_BUNDLE", k)})
    return env


def copy_files(rest: str, context: Path, files: list[str], workdir: Path) -> None:
    """COPY SRC... DEST relative to WORKDIR: a folder's contents into DEST, a file into DEST, `.` the whole context."""
    *sources, dest = shlex.split(rest)
    for src in (s.rstrip("/") for s in sources):
        for f in files:
            if src == ".":
                rel = f
            elif f == src:
                rel = Path(f).name
            elif f.startswith(src + "/"):
                rel = f[len(src) + 1 :]
            else:
                continue
            target = workdir / dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / f, target)


def run_command(rest: str, root: Path, workdir: Path, env: dict, dry: bool) -> int:
    """One RUN: --mount options dropped, `useradd` replaced by the folders it would own, paths mapped."""
    command = re.sub(r"--mount=\S+\s*", "", rest)
    if "useradd" in command:
        command = re.sub(r"&&\s*chown[^&]*", "", command.split("&&", 1)[1])
    command = mapped(command, root)
    print(f"[replay] RUN {command}", flush=True)
    return 0 if dry else subprocess.run(["/bin/sh", "-c", command], cwd=workdir, env=env).returncode


def replay(context: Path, root: Path, build_args: dict, dry: bool = False) -> int:
    """Carries out the Dockerfile in `context` under `root`; the exit status of the first failing RUN, else 0."""
    env, args, workdir = clean_environment(root), {}, root
    (root / "root").mkdir(parents=True, exist_ok=True)
    listing = ["git", "ls-files", "-co", "--exclude-standard"]  # the build context, .dockerignore's spirit
    files = subprocess.run(listing, cwd=context, capture_output=True, text=True, check=True).stdout.split()
    for op, rest in instructions((context / "Dockerfile").read_text()):
        t0 = time.perf_counter()
        if op == "ARG":
            key, _, default = rest.partition("=")
            args[key] = build_args.get(key, default)
        elif op == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                env[key] = expanded(mapped(value, root), {**env, **args})
        elif op == "WORKDIR":
            workdir = Path(mapped(rest, root))
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            copy_files(rest, context, files, workdir)
        elif op == "USER":
            env["HOME"] = str(root / "home" / rest)
            Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
        elif op == "RUN":
            status = run_command(rest, root, workdir, {**env, **args}, dry)
            if status:
                print(f"[replay] RUN failed ({status})")
                return status
        else:
            print(f"[replay] {op} {rest} (not replayed)")
            continue
        print(f"[replay] {op} {rest[:80]} ... {time.perf_counter() - t0:.1f} s", flush=True)
    (root / "env.sh").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    print(f"[replay] done; the image's environment: . {root / 'env.sh'}; its WORKDIR: {workdir}")
    return 0


def main() -> int:
    """Parse the arguments and replay."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("context", type=Path, help="the build context (holds the Dockerfile)")
    parser.add_argument("root", type=Path, help="where the image's file system is made")
    parser.add_argument("--build-arg", action="append", default=[], help="KEY=VALUE, as docker build's")
    parser.add_argument("--dry", action="store_true", help="print the RUN commands without running them")
    a = parser.parse_args()
    build_args = dict(kv.split("=", 1) for kv in a.build_arg)
    return replay(a.context.resolve(), a.root.resolve(), build_args, a.dry)


if __name__ == "__main__":
    sys.exit(main())
