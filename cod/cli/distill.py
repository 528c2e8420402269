"""`python -m cod distill --data FILE|TASK --teacher demo --student demo --method kd [--cod] --k 16 --seed 0
--out DIR`.

Draws the seeded few-shot set, makes (or reads) the counterfactuals of its real half with --cod, runs
`cod.distill.trainer` with progress on stderr, prints the final metrics. Runs as is on CPU or one GPU, and on several
GPUs through `accelerate launch -m cod distill ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cod.cli._common import add_config_flags, config_overrides, parse_set
from cod.cli._teacher import add_teacher_args
from cod.config import DistillConfig


def register(subparsers) -> None:
    """Add the `distill` command."""
    p = subparsers.add_parser(
        "distill",
        help="distil a teacher into a small student from k examples (KD, LWD, CE; with or without CoD)",
        description="Few-shot distillation. With --cod the budget k is k/2 real examples (the first half of the same "
        "seeded draw) plus their k/2 counterfactuals; without it, all k real examples. Writes config.json, "
        "metrics.json, train_set.jsonl, README.md and model/ under --out.",
    )
    p.add_argument(
        "--data", default=None, metavar="FILE|TASK", help="a data file or a built-in task (demo, sst2, ...)"
    )
    p.add_argument(
        "--project",
        default=None,
        metavar="NAME",
        help="instead of --data: a project of the store (its "
        "draw, held-out data, models and curated counterfactuals); the run is recorded in it",
    )
    p.add_argument(
        "--db", default=None, metavar="PATH", help="the store file of --project [$COD_DB or $COD_HOME/cod.db]"
    )
    p.add_argument(
        "--unreviewed",
        action="store_true",
        help="with --project --cod: also train on proposals nobody "
        "reviewed (default: only the edited or accepted counterfactual of each example)",
    )
    p.add_argument(
        "--validation",
        default=None,
        metavar="FILE|none",
        help="labelled examples that choose the checkpoint "
        "(default: the task's split, or a file's rows not drawn; 'none': keep the last step)",
    )
    p.add_argument(
        "--unlabelled",
        default=None,
        metavar="FILE",
        help="texts without labels (a text column): the "
        "checkpoint agreeing most with the teacher on them is kept (when no validation is given)",
    )
    p.add_argument("--unlabelled-column", default=None, metavar="C", help="the text column of --unlabelled [guessed]")
    p.add_argument(
        "--test", default=None, metavar="FILE", help="test file (default: the task's test split; none for a file)"
    )
    p.add_argument("--text-column", default=None, metavar="C", help="the text column of --data [guessed by name]")
    p.add_argument(
        "--label-column",
        default=None,
        metavar="L",
        help="the label column of --data [a column named label, sentiment, class, stars, ...]",
    )
    p.add_argument(
        "--counterfactuals", default=None, metavar="FILE", help="JSONL from `python -m cod generate` (with --cod)"
    )
    p.add_argument(
        "--teacher",
        default=None,
        help="teacher: 'demo', a classifier's Hub id or folder, 'demo-llm', "
        "a causal LM, or api:MODEL [the project's, or demo]",
    )
    add_teacher_args(p)
    p.add_argument(
        "--student", default=None, help="student: 'demo', a Hub id or a local folder [the project's, or demo]"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (resumed when it holds this run's checkpoint)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other distill setting (JSON value)"
    )
    p.add_argument("--device", default=None, help="teacher device: cpu, cuda, cuda:N, mps [best available]")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--push-to-hub", default=None, metavar="REPO", help="push the model and its card to this Hub repo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(p, DistillConfig, title="distill settings (any of them also as --set KEY=VALUE)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> DistillConfig:
    """The DistillConfig from the command line (validated): the generated flags, then `--set` on top."""
    return DistillConfig.from_dict({**config_overrides(args, DistillConfig), **parse_set(args.set)})


def _open_project(args: argparse.Namespace):
    """(store, project, source, splits) of --project; its k, seed and models fill the flags not given."""
    from cod.errors import ConfigError
    from cod.experiment import open_project
    from cod.store import Store

    for flag in ("data", "validation", "unlabelled", "test"):
        if getattr(args, flag):
            raise ConfigError(f"--{flag} does not go with --project: the project holds its data and held-out split.")
    for flag in ("k", "seed"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag} does not go with --project: the project holds its draw (k and seed).")
    store = Store(args.db) if args.db else Store()
    project, source, splits = open_project(store, args.project)
    args.k, args.seed = project.k, project.seed
    args.teacher, args.student = args.teacher or project.teacher, args.student or project.student
    return store, project, source, splits


def load_splits(args: argparse.Namespace, k: int, seed: int):
    """(source, splits) from a task or files: the draw, and held-out data that never holds a drawn example."""
    from cod.config import DataConfig
    from cod.experiment import open_source, split

    config = DataConfig(text_column=args.text_column, label_column=args.label_column)
    source = open_source(
        args.data,
        config,
        validation=args.validation,
        test=args.test,
        unlabelled=args.unlabelled,
        unlabelled_column=args.unlabelled_column,
    )
    return source, split(source, k, seed)


def _progress(quiet: bool):
    from tqdm import tqdm

    state = {"bar": None}

    def on_event(e) -> None:
        if e.kind == "step" and not quiet:
            if state["bar"] is None:
                state["bar"] = tqdm(total=e.total, initial=e.step - 1, unit="step", desc="distill", file=sys.stderr)
            state["bar"].update(e.step - state["bar"].n)
            state["bar"].set_postfix(loss=f"{e.losses['loss']:.3f}", epoch=f"{e.epoch:.1f}")
        elif e.kind == "eval":
            from cod.distill.selection import PREFIX

            m, prefix = e.metrics, PREFIX.get(e.metrics.get("selection", "validation")) or "val"
            shares = " ".join(
                f"{k[len(prefix) + 7:]}={v:.2f}" for k, v in m.items() if k.startswith(f"{prefix}_share_")
            )
            line = (
                f"step {e.step}/{e.total}: {prefix} accuracy {m[f'{prefix}_accuracy']:.4f} macro-F1 "
                f"{m[f'{prefix}_macro_f1']:.4f} (best {m['best_metric']:.4f} at step {m['best_step']}) "
                f"predicted {shares}"
            )
            (state["bar"].write if state["bar"] is not None else print)(line, file=sys.stderr)
        elif e.kind in ("done", "stopped", "error") and state["bar"] is not None:
            state["bar"].close()

    return on_event


def _say(*parts, **kw) -> None:
    # Under `accelerate launch` every process runs this command: only the main one (rank 0) prints.
    if int(os.environ.get("RANK", "0")) == 0:
        print(*parts, **kw)


def run(args: argparse.Namespace) -> int:
    """Handler of `distill`: load, draw, propose (with --cod), distil, print the metrics."""
    import torch

    from cod.cli._teacher import load_teacher_from_args, say_estimate
    from cod.counterfactuals.base import read_counterfactuals, write_counterfactuals
    from cod.errors import ConfigError
    from cod.experiment import recorded_distillation, run_distillation
    from cod.modeling.loading import check_labels

    if args.threads:
        torch.set_num_threads(args.threads)
    if bool(args.data) == bool(args.project):
        raise ConfigError(
            "Give either --data (a file or a task) or --project (a project of the store), not "
            f"{'both' if args.data else 'neither'}."
        )
    store = None
    if args.project:
        if args.counterfactuals:
            raise ConfigError("--counterfactuals does not go with --project: the project's curated ones are used.")
        store, _, source, splits = _open_project(args)
    args.teacher, args.student = args.teacher or "demo", args.student or "demo"
    config = build_config(args)
    if args.counterfactuals and not config.cod:
        raise ConfigError("--counterfactuals is only used with --cod: add --cod, or leave the file out.")
    out = Path(args.out).expanduser()
    if store is None:
        source, splits = load_splits(args, config.k, config.seed)
    names, draw = source.label_names, splits.few_shot
    for line in splits.lines():
        _say(line, file=sys.stderr)
    device = args.device
    if device is None and torch.cuda.is_available():  # under `accelerate launch`, each process uses its own GPU
        from accelerate import PartialState

        device = str(PartialState().device)
    teacher = load_teacher_from_args(args, names, device=device)
    check_labels(teacher.label_names, names)
    held_out = [*(getattr(splits, "validation", None) or []), *(getattr(splits, "test", None) or [])]
    say_estimate(teacher, [e.text for e in [*draw, *held_out]])  # API teachers: the cost up front

    cfs = None
    if config.cod:
        if store is not None:  # the project's: the edit, else the accepted one (unreviewed only with --unreviewed)
            from cod.experiment import training_counterfactuals

            cfs = training_counterfactuals(store, args.project, args.unreviewed)
            _say(
                f"{len(cfs)} counterfactual(s) of project {args.project!r} train "
                f"({'including unreviewed proposals' if args.unreviewed else 'edited or accepted'})",
                file=sys.stderr,
            )
        elif args.counterfactuals:
            cfs = read_counterfactuals(args.counterfactuals, names)
        else:  # the offline proposer, cached under $COD_HOME/cache/lexical
            from cod.counterfactuals import propose

            real = splits.real_half
            _say(f"proposing counterfactuals for the {len(real)} real examples (lexical, cached) ...", file=sys.stderr)
            cfs = propose(real, teacher, proposer="lexical", few_shot=draw)
            write_counterfactuals(out / "counterfactuals.jsonl", cfs, names)
            _say(f"{sum(c.flipped for c in cfs)} of {len(cfs)} flip the teacher", file=sys.stderr)

    run_info = {
        "data": args.data or f"project:{args.project}",
        "counterfactuals_file": args.counterfactuals,
        "task_description": source.description,
    }
    kwargs = {"on_event": _progress(args.quiet), "out_dir": out, "label_names": names, "run_info": run_info}
    if store is not None:
        with store:
            result, run_id = recorded_distillation(
                store, args.project, config, teacher, args.student, splits, cfs, **kwargs
            )
        _say(f"recorded as run {run_id} of project {args.project!r}")
    else:
        result = run_distillation(config, teacher, args.student, splits, cfs, **kwargs)
    _say(format_metrics(result.metrics))
    _say(f"saved to {out} (student in {out / 'model'})")
    if args.push_to_hub and int(os.environ.get("RANK", "0")) == 0:
        from cod.distill.run_folder import push_to_hub

        _say(f"pushed to {push_to_hub(out, args.push_to_hub)}")
    return 0


def format_metrics(metrics: dict) -> str:
    """The final lines: accuracy, selection, counts, time."""
    from cod.experiment import checkpoint_line

    def f(key, digits=4):
        value = metrics.get(key)
        return "n/a" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    return "\n".join(
        [
            f"{metrics['method']} k={metrics['k']} seed={metrics['seed']} head={metrics['head']}"
            + (f" lwd={metrics['lwd_mode']}" if metrics.get("lwd_mode") else ""),
            f"  student test accuracy {f('student_test_accuracy')}  macro-F1 {f('student_test_macro_f1')}  "
            f"(teacher {f('teacher_test_accuracy')}, agreement {f('test_agreement')})",
            f"  checkpoint: {checkpoint_line(metrics)}"
            + (" (stopped)" if metrics.get("stopped") else "")
            + (" (early stop)" if metrics.get("early_stopped") else ""),
            f"  {metrics['train_examples']} training examples ({metrics['real_examples']} real, "
            f"{metrics['counterfactuals_used']} counterfactuals, {metrics['counterfactuals_dropped']} dropped); "
            f"teacher passes {metrics['teacher_train_forward_passes']} "
            f"for {metrics['unique_train_texts']} unique texts",
            f"  {f('wall_seconds', 1)} s wall ({f('train_seconds', 1)} s training, "
            f"{f('eval_seconds', 1)} s evaluating), "
            f"peak memory {f('peak_memory_mb', 0)} MB on {metrics['device']}",
        ]
    )
