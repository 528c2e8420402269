"""`python -m cod sweep --task demo --k 8,16,32,64 --seeds 0,1,2,3,4 --methods kd,kd+cod --out DIR`: a budget-matched,
resumable grid of distillation runs; prints one line per cell and the summary table."""

from __future__ import annotations

import argparse
import time

from cod.cli._common import add_config_flags, config_overrides, parse_set
from cod.cli._teacher import add_teacher_args
from cod.config import DistillConfig, SweepConfig

# Each cell's method, cod, k and seed come from the sweep grid, not from distill settings.
_GRID = ("method", "cod", "k", "seed")


def register(subparsers) -> None:
    """Add the `sweep` command."""
    p = subparsers.add_parser(
        "sweep",
        help="run a budget-matched grid of methods x k x seeds and summarise it",
        description="Every method x k x seed on one task. A +cod cell trains on k/2 real examples and their k/2 "
        "counterfactuals; its baseline on all k examples of the same seeded draw. Finished cells are skipped when "
        "the same command runs again. Writes results.csv, summary.csv and figures/ under --out.",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any distill setting (JSON value)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--project",
        default=None,
        help="record the results under this store project (the app's Compare tab shows them)",
    )
    p.add_argument("--db", default=None, help="project store file [$COD_DB or $COD_HOME/cod.db]")
    p.add_argument("--no-record", action="store_true", help="do not record the results in the project store")
    add_config_flags(p, SweepConfig, required=("out",), title="sweep settings")
    add_config_flags(p, DistillConfig, skip=_GRID, title="distill settings of every cell (also as --set KEY=VALUE)")
    add_teacher_args(p)
    ray = p.add_argument_group("running on Ray (pip install -e '.[ray]')")
    ray.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local: cells one after another in this process; ray: each cell a Ray task [local]",
    )
    ray.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: 'auto' (the one started on this machine with `ray start`), HOST:6379, "
        "or ray://HOST:10001 (Ray Client); default: start a Ray runtime on this machine",
    )
    ray.add_argument(
        "--cpus-per-cell",
        type=float,
        default=1,
        help="CPUs Ray reserves for each cell (torch uses as many threads) [1]",
    )
    ray.add_argument(
        "--gpus-per-cell", type=float, default=0, help="GPUs Ray reserves for each cell; fractions share a GPU [0]"
    )
    p.set_defaults(func=run_sweep)


def build_config(args: argparse.Namespace) -> SweepConfig:
    """The SweepConfig from the command line (validated): its flags, the distill flags and `--set` of every cell."""
    settings = parse_set(args.set, example="--set keep_unflipped=true")
    distill = {**config_overrides(args, DistillConfig, skip=_GRID), **settings}
    return SweepConfig.from_dict({**config_overrides(args, SweepConfig), "distill": distill})


def run_sweep(args: argparse.Namespace) -> int:
    """Handler of `sweep`."""
    from cod.cli._teacher import load_teacher_from_args
    from cod.modeling.teachers.load import teacher_kind
    from cod.sweep import sweep
    from cod.sweep.tables import SUMMARY_COLUMNS

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = build_config(args)
    started = time.perf_counter()
    recorder = None
    if not args.no_record:
        from cod.store import Store
        from cod.sweep.record import StoreRecorder

        store = Store(args.db)
        recorder = StoreRecorder(store, config, project=args.project, label=str(config.out))

    def show(event) -> None:
        if recorder is not None:
            recorder(event)  # each cell's row is in the store as soon as it finishes
        m = event.metrics
        if event.kind == "start":
            print(f"{event.total} cells; teacher test accuracy {m['teacher_accuracy']:.4f}", flush=True)
        elif event.kind == "cell":
            print(
                f"[{event.done}/{event.total}] {event.cell}: accuracy {m.get('student_accuracy', float('nan')):.4f}, "
                f"agreement {m.get('agreement', float('nan')):.4f}, "
                f"flip fidelity {m.get('flip_fidelity', float('nan')):.3f}, "
                f"{m.get('wall_seconds', 0):.0f} s",
                flush=True,
            )
        elif event.kind == "skip":
            print(f"[{event.done}/{event.total}] {event.cell}: done before, skipped", flush=True)
        elif event.kind in {"error", "warning"}:
            print(f"[{event.done}/{event.total}] {event.cell} {event.kind}: {event.message}", flush=True)
        elif event.kind == "stopped":
            print(f"stopped before {event.cell}; run the same command to resume", flush=True)

    teacher = None
    if teacher_kind(config.teacher, args.teacher_kind) != "classifier":  # an LLM teacher, with the prompt flags
        from cod.data.tasks import load_task

        args.teacher = config.teacher
        teacher = load_teacher_from_args(args, load_task(config.task).label_names)
    try:
        result = sweep(config, teacher=teacher, on_event=show, backend=_backend(args))
        if recorder is not None:
            recorder.add(result.results.to_dict("records"))  # cells of earlier invocations of this folder
    finally:
        if recorder is not None:
            recorder.store.close()
    hidden = {"baseline", "n_paired"}  # the printed table leaves these to summary.csv
    cols = [c for c in SUMMARY_COLUMNS if c in result.summary and c not in hidden]
    if len(result.summary):
        print(result.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"wrote {result.out_dir / 'results.csv'}, {result.out_dir / 'summary.csv'} "
        f"in {time.perf_counter() - started:.0f} s"
    )
    if recorder is not None and recorder.sweep_id is not None:
        print(
            f"recorded as sweep {recorder.sweep_id} in {recorder.store.path}"
            + (f" (project {args.project})" if args.project else "")
        )
    return 0


def _backend(args: argparse.Namespace):
    """The backend the flags ask for."""
    from cod.sweep import LocalBackend, RayBackend

    if args.backend == "local":
        if args.address or args.cpus_per_cell != 1 or args.gpus_per_cell:
            print("note: --address, --cpus-per-cell and --gpus-per-cell only apply with --backend ray", flush=True)
        return LocalBackend()
    return RayBackend(address=args.address, cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell)
