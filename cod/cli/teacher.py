"""`python -m cod teacher build-demo [--force]`: build the embedded demo teacher once (a no-op when built)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the `teacher` command group."""
    parser = subparsers.add_parser("teacher", help="build and inspect teachers")
    sub = parser.add_subparsers(dest="teacher_command", required=True, metavar="ACTION")
    build = sub.add_parser(
        "build-demo",
        help="build the embedded demo teacher (all-mpnet-base-v2 + a head fitted on the demo task) under $COD_HOME/models",
        description="Build the demo teacher once (a few minutes on 2 cores); does nothing when it is already built.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    build.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    build.set_defaults(func=build_demo)
    info = sub.add_parser("info", help="show the demo teacher's saved figures (accuracy, build time)")
    info.set_defaults(func=show_info)


def build_demo(args: argparse.Namespace) -> int:
    """Handler of `teacher build-demo`."""
    from cod.modeling.demo import build as demo

    if demo.is_built() and not args.force:
        print(f"demo teacher already built: {demo.demo_teacher_dir()}")
        _print_metrics(demo.demo_teacher_metrics())
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    path = demo.build_demo_teacher(force=args.force)
    print(f"demo teacher built: {path}")
    _print_metrics(demo.demo_teacher_metrics())
    return 0


def show_info(args: argparse.Namespace) -> int:
    """Handler of `teacher info`."""
    from cod.modeling.demo import build as demo

    print(json.dumps({"path": str(demo.demo_teacher_dir()), **demo.demo_teacher_metrics()}, indent=2))
    return 0


def _print_metrics(m: dict) -> None:
    print(
        f"validation accuracy {m['validation_accuracy']:.4f}, test accuracy {m['test_accuracy']:.4f}, "
        f"{m['train_size']} train sentences, built in {m['build_seconds']:.0f} s"
    )
