"""`python -m cod sweep --task demo --k 8,16,32,64 --seeds 0,1,2,3,4 --methods kd,kd+cod --out DIR`: a budget-matched,
resumable grid of distillation runs; prints one line per cell and the summary table."""

from __future__ import annotations

import argparse
import time

from cod.cli._common import parse_set

# CLI flag -> DistillConfig field, for the settings people change most; anything else goes through --set.
_DISTILL_FLAGS = {
    "epochs": int, "max_steps": int, "lr": float, "batch_size": int, "alpha": float, "temperature": float, "beta": float,
    "head": str, "evaluations": int, "max_validation": int, "ce_label": str, "warmup_ratio": float,
}  # fmt: skip
_FIELD = {"lr": "learning_rate"}


def register(subparsers) -> None:
    """Add the `sweep` command."""
    p = subparsers.add_parser(
        "sweep",
        help="run a budget-matched grid of methods x k x seeds and summarise it",
        description="Every method x k x seed on one task. A +cod cell trains on k/2 real examples and their k/2 "
        "counterfactuals; its baseline on all k examples of the same seeded draw. Finished cells are skipped when "
        "the same command runs again. Writes results.csv, summary.csv and figures/ under --out.",
    )
    p.add_argument("--task", default="demo", help="task name (demo, sst2, ...) [demo]")
    p.add_argument("--k", default="8,16,32,64", help="comma-separated budgets [8,16,32,64]")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds [0,1,2,3,4]")
    p.add_argument("--methods", default="kd,kd+cod,lwd,lwd+cod,ce", help="comma-separated: ce kd lwd ce+cod kd+cod lwd+cod setfit")
    p.add_argument("--out", required=True, help="sweep folder (created; resumed when it exists)")
    p.add_argument("--teacher", default="demo", help="teacher: Hub id, local path or demo [demo]")
    p.add_argument("--student", default="demo", help="student: Hub id, local path or demo [demo]")
    p.add_argument("--proposer", default="lexical", choices=["lexical", "llm"], help="counterfactual proposer [lexical]")
    p.add_argument("--probe-pairs", type=int, default=64, help="held-out probe pairs for boundary fidelity; 0 off [64]")
    p.add_argument("--test-limit", type=int, default=0, help="evaluate on a fixed subset of N test examples (quick runs) [all]")
    p.add_argument("--no-figures", action="store_true", help="skip the per-cell boundary figures")
    for flag, kind in _DISTILL_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", type=kind, default=None, help=f"distill setting {_FIELD.get(flag, flag)}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other distill setting (JSON value), repeatable")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--project", default=None, help="record the results under this store project (the app's Compare tab shows them)")
    p.add_argument("--db", default=None, help="project store file [$COD_DB or $COD_HOME/cod.db]")
    p.add_argument("--no-record", action="store_true", help="do not record the results in the project store")
    p.set_defaults(func=run_sweep)


def _overrides(args: argparse.Namespace) -> dict:
    out = {}
    for flag in _DISTILL_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            out[_FIELD.get(flag, flag)] = value
    out.update(parse_set(args.set, example="--set keep_unflipped=true"))
    return out


def run_sweep(args: argparse.Namespace) -> int:
    """Handler of `sweep`."""
    from cod.config import SweepConfig
    from cod.sweep import sweep

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = SweepConfig(
        task=args.task,
        ks=args.k,
        seeds=args.seeds,
        methods=tuple(m.strip() for m in args.methods.split(",")),
        out=args.out,
        teacher=args.teacher,
        student=args.student,
        proposer=args.proposer,
        distill=_overrides(args),
        probe_pairs=args.probe_pairs,
        test_limit=args.test_limit,
        figures=not args.no_figures,
    )
    started = time.perf_counter()

    def show(event) -> None:
        m = event.metrics
        if event.kind == "start":
            print(f"{event.total} cells; teacher test accuracy {m['teacher_accuracy']:.4f}", flush=True)
        elif event.kind == "cell":
            print(
                f"[{event.done}/{event.total}] {event.cell}: accuracy {m.get('student_accuracy', float('nan')):.4f}, "
                f"agreement {m.get('agreement', float('nan')):.4f}, flip fidelity {m.get('flip_fidelity', float('nan')):.3f}, "
                f"{m.get('wall_seconds', 0):.0f} s",
                flush=True,
            )
        elif event.kind == "skip":
            print(f"[{event.done}/{event.total}] {event.cell}: done before, skipped", flush=True)
        elif event.kind in {"error", "warning"}:
            print(f"[{event.done}/{event.total}] {event.cell} {event.kind}: {event.message}", flush=True)
        elif event.kind == "stopped":
            print(f"stopped before {event.cell}; run the same command to resume", flush=True)

    result = sweep(config, on_event=show)
    cols = [c for c in ("method", "k", "n_seeds", "mean", "std", "ci_low", "ci_high", "paired_diff", "paired_ci_low",
                        "paired_ci_high", "seeds_won") if c in result.summary]  # fmt: skip
    if len(result.summary):
        print(result.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {result.out_dir / 'results.csv'}, {result.out_dir / 'summary.csv'} in {time.perf_counter() - started:.0f} s")
    if not args.no_record and len(result.results):
        from cod.store.projects import Store

        with Store(args.db) as store:
            sweep_id = store.add_sweep(args.project, config, label=str(result.out_dir))
            store.add_sweep_results(sweep_id, result.results.to_dict("records"))
            print(f"recorded as sweep {sweep_id} in {store.path}" + (f" (project {args.project})" if args.project else ""))
    return 0
