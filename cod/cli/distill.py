"""`python -m cod distill --data FILE|TASK --teacher demo --student demo --method kd [--cod] --k 16 --seed 0 --out DIR`.

Draws the seeded few-shot set, makes (or reads) the counterfactuals of its real half with --cod, runs `cod.distill.trainer`
with progress on stderr, prints the final metrics. Runs as is on CPU or one GPU, and on several GPUs through
`accelerate launch -m cod distill ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cod.cli._common import add_config_flags, config_overrides, parse_set
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
    p.add_argument("--data", required=True, metavar="FILE|TASK", help="a data file or a built-in task (demo, sst2, ...)")
    p.add_argument("--validation", default=None, metavar="FILE", help="validation file (default: the task's split, "
                   "or a seeded hold-out of the data file)")  # fmt: skip
    p.add_argument("--test", default=None, metavar="FILE", help="test file (default: the task's test split; none for a file)")
    p.add_argument("--counterfactuals", default=None, metavar="FILE", help="JSONL from `python -m cod generate` (with --cod)")
    p.add_argument("--teacher", default="demo", help="teacher: 'demo', a Hub id or a local folder [demo]")
    p.add_argument("--student", default="demo", help="student: 'demo', a Hub id or a local folder [demo]")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (resumed when it holds this run's checkpoint)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other distill setting (JSON value)")
    p.add_argument("--device", default=None, help="teacher device: cpu, cuda, cuda:N, mps [best available]")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--push-to-hub", default=None, metavar="REPO", help="push the model and its card to this Hub repo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(p, DistillConfig, title="distill settings (any of them also as --set KEY=VALUE)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> DistillConfig:
    """The DistillConfig from the command line (validated): the generated flags, then `--set` on top."""
    return DistillConfig.from_dict({**config_overrides(args, DistillConfig), **parse_set(args.set)})


def _load_like(path: str, names: list[str]):
    """Examples of a validation/test file, with labels mapped by name onto the training file's label order."""
    from cod.data.readers import Example, load
    from cod.errors import DataError

    data = load(path)
    if list(data.label_names) == names:
        return list(data.examples)
    unknown = sorted(set(data.label_names) - set(names))
    if unknown:
        raise DataError(f"{path} has labels {unknown} that the training data does not have ({names}): use the same labels.")
    index = [names.index(n) for n in data.label_names]
    return [Example(e.text, index[e.label], e.text_pair) for e in data.examples]


def load_splits(args: argparse.Namespace, seed: int):
    """(pool, validation, test, label_names, description) from a task or files; a file's validation is held out."""
    import numpy as np

    from cod.data.readers import load
    from cod.errors import DataError
    from cod.data.tasks import ALIASES, TASKS, load_task

    key = args.data.strip().lower()
    if not Path(args.data).expanduser().exists() and (key in TASKS or key in ALIASES):
        task = load_task(args.data)
        pool, validation, test, names = list(task.train), list(task.validation), list(task.test), list(task.label_names)
        description = task.description
    else:
        data = load(args.data)
        pool, names, description, test = list(data.examples), list(data.label_names), "", []
        if not args.validation:  # a seeded hold-out, disjoint from the few-shot pool
            order = np.random.default_rng([seed, 7]).permutation(len(pool))
            n_val = min(500, len(pool) // 5)
            validation = [pool[i] for i in order[:n_val]]
            pool = [pool[i] for i in order[n_val:]]
    if args.validation:
        validation = _load_like(args.validation, names)
    if args.test:
        test = _load_like(args.test, names)
    if not pool:
        raise DataError(f"{args.data!r} has no training examples.")
    return pool, validation, test, names, description


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
            shares = " ".join(f"{k[10:]}={v:.2f}" for k, v in e.metrics.items() if k.startswith("val_share_"))
            line = (f"step {e.step}/{e.total}: val accuracy {e.metrics['val_accuracy']:.4f} macro-F1 "
                    f"{e.metrics['val_macro_f1']:.4f} (best {e.metrics['best_metric']:.4f} at step {e.metrics['best_step']}) "
                    f"predicted {shares}")  # fmt: skip
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

    from cod.counterfactuals.base import read_counterfactuals, write_counterfactuals
    from cod.data.readers import cod_real_half, sample_few_shot
    from cod.distill.trainer import distill
    from cod.errors import ConfigError
    from cod.modeling.loading import check_labels, load_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    config = build_config(args)
    if args.counterfactuals and not config.cod:
        raise ConfigError("--counterfactuals is only used with --cod: add --cod, or leave the file out.")
    out = Path(args.out).expanduser()
    pool, validation, test, names, description = load_splits(args, config.seed)
    draw = sample_few_shot(pool, config.k, seed=config.seed, label_names=names)
    device = args.device
    if device is None and torch.cuda.is_available():  # under `accelerate launch`, each process uses its own GPU
        from accelerate import PartialState

        device = str(PartialState().device)
    teacher = load_teacher(args.teacher, device=device)
    check_labels(teacher.label_names, names)

    cfs = None
    if config.cod:
        if args.counterfactuals:
            cfs = read_counterfactuals(args.counterfactuals, names)
        else:  # the offline proposer, cached under $COD_HOME/cache/lexical
            from cod.counterfactuals import propose

            real = cod_real_half(draw)
            _say(f"proposing counterfactuals for the {len(real)} real examples (lexical, cached) ...", file=sys.stderr)
            cfs = propose(real, teacher, proposer="lexical", few_shot=draw)
            write_counterfactuals(out / "counterfactuals.jsonl", cfs, names)
            _say(f"{sum(c.flipped for c in cfs)} of {len(cfs)} flip the teacher", file=sys.stderr)

    run_info = {"data": args.data, "counterfactuals_file": args.counterfactuals, "task_description": description}
    result = distill(config, teacher, args.student, draw, cfs, validation, on_event=_progress(args.quiet),
                     out_dir=out, test=test or None, label_names=names, run_info=run_info)  # fmt: skip
    _say(format_metrics(result.metrics))
    _say(f"saved to {out} (student in {out / 'model'})")
    if args.push_to_hub and int(os.environ.get("RANK", "0")) == 0:
        from cod.distill.run_folder import push_to_hub

        _say(f"pushed to {push_to_hub(out, args.push_to_hub)}")
    return 0


def format_metrics(metrics: dict) -> str:
    """The final lines: accuracy, selection, counts, time."""
    def f(key, digits=4):
        value = metrics.get(key)
        return "n/a" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    return "\n".join([
        f"{metrics['method']} k={metrics['k']} seed={metrics['seed']} head={metrics['head']}"
        + (f" lwd={metrics['lwd_mode']}" if metrics.get("lwd_mode") else ""),
        f"  student test accuracy {f('student_test_accuracy')}  macro-F1 {f('student_test_macro_f1')}  "
        f"(teacher {f('teacher_test_accuracy')}, agreement {f('test_agreement')})",
        f"  student validation accuracy {f('student_validation_accuracy')} at step {metrics['best_step']} of {metrics['steps']}"
        + (" (stopped)" if metrics.get("stopped") else "") + (" (early stop)" if metrics.get("early_stopped") else ""),
        f"  {metrics['train_examples']} training examples ({metrics['real_examples']} real, {metrics['counterfactuals_used']} "
        f"counterfactuals, {metrics['counterfactuals_dropped']} dropped); teacher passes {metrics['teacher_train_forward_passes']} "
        f"for {metrics['unique_train_texts']} unique texts",
        f"  {f('wall_seconds', 1)} s wall ({f('train_seconds', 1)} s training, {f('eval_seconds', 1)} s evaluating), "
        f"peak memory {f('peak_memory_mb', 0)} MB on {metrics['device']}",
    ])  # fmt: skip
