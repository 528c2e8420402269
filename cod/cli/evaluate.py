"""`python -m cod evaluate --model RUN_DIR [--teacher demo] [--task demo | --data FILE] [--probes cfes.jsonl]`:
teacher and student metrics on held-out data, boundary fidelity on probe pairs, and the boundary figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from cod.cli._teacher import TEACHER_HELP, add_teacher_args


def register(subparsers) -> None:
    """Add the `evaluate` command."""
    p = subparsers.add_parser(
        "evaluate",
        help="compare a distilled student with its teacher on held-out data",
        description="Accuracy, macro-F1, calibration, agreement and mean KL on held-out examples; flip fidelity and "
        "edit-path distance on counterfactual probe pairs made from held-out examples (never training ones).",
    )
    p.add_argument(
        "--model", required=True, help="the student: a distill run folder, a saved model folder, or a Hub id"
    )
    p.add_argument("--teacher", default="demo", help=TEACHER_HELP)
    add_teacher_args(p)
    p.add_argument("--task", default=None, help="built-in task whose split to evaluate on [demo unless --data]")
    p.add_argument("--split", default="test", choices=["test", "validation"], help="split of --task [test]")
    p.add_argument("--data", default=None, help="a labelled file to evaluate on instead of a task split")
    p.add_argument("--limit", type=int, default=0, help="evaluate on the first N examples only")
    p.add_argument(
        "--probes", default=None, help="a counterfactuals JSONL of held-out pairs to probe the boundary with"
    )
    p.add_argument(
        "--probe-pairs", type=int, default=32, help="without --probes: make this many probe pairs offline; 0 off [32]"
    )
    p.add_argument("--out", default=None, help="folder for metrics.json and figures [RUN/eval for a run folder]")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of `evaluate`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from cod.cli._teacher import load_teacher_from_args
    from cod.counterfactuals.base import read_counterfactuals
    from cod.errors import ModelError
    from cod.eval.boundary import boundary_fidelity, boundary_points, check_held_out, edit_path_table, probe_pairs
    from cod.eval.metrics import StudentScorer, evaluate, evaluation_table
    from cod.eval.plots import boundary_view, edit_path_plot, save_figure
    from cod.io import write_json
    from cod.modeling.heads import register

    if args.threads:
        torch.set_num_threads(args.threads)
    model_path, run_dir = _model_and_run_dir(args.model)
    examples, label_names, train_texts = _held_out(args)
    if args.limit:
        examples = examples[: args.limit]
    try:
        register()  # a student with cod's mean-pooling head loads through the Auto classes
        model = AutoModelForSequenceClassification.from_pretrained(model_path)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except OSError as err:
        raise ModelError(f"Cannot load the student {args.model!r}: {err}. Give a run folder or a Hub id.") from err
    student_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    if student_names != list(label_names):
        raise ModelError(
            f"The student's labels {student_names} differ from the data's {list(label_names)}: "
            "evaluate on matching data."
        )
    teacher = load_teacher_from_args(args, label_names)
    student = StudentScorer(model, tokenizer)
    metrics = evaluate(teacher, student, examples, label_names)
    print(evaluation_table(metrics).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    out = Path(args.out) if args.out else (run_dir / "eval" if run_dir else Path("eval"))
    pairs = []
    if args.probes:
        pairs = [p for p in read_counterfactuals(args.probes, label_names) if p.counterfactual and not p.error]
    elif args.probe_pairs:
        pairs = probe_pairs(examples, teacher, n=args.probe_pairs, train_texts=train_texts)
    if pairs:
        check_held_out(pairs, train_texts)
        metrics.update(boundary_fidelity(pairs, teacher, student))
        print(
            f"boundary: {metrics['probe_pairs']} probe pairs, flip fidelity {metrics['flip_fidelity']:.3f}, "
            f"edit-path distance {metrics['edit_path_distance']:.3f} steps"
        )
        save_figure(edit_path_plot(edit_path_table(pairs, teacher, student)), out, "edit_paths")
        if hasattr(teacher, "embed"):
            save_figure(
                boundary_view(boundary_points(pairs, teacher, student, label_names=label_names)), out, "boundary"
            )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics, sort_keys=False)
    print(f"wrote {out / 'metrics.json'}")
    return 0


def _model_and_run_dir(name: str) -> tuple[str, Path | None]:
    """A distill run folder holds its student in `model/`: accept either; figures go beside the run's metrics."""
    path = Path(name)
    if (path / "model" / "config.json").exists():
        return str(path / "model"), path
    if (path / "config.json").exists():
        return name, path.parent if (path.parent / "metrics.json").exists() else path
    return name, None


def _held_out(args: argparse.Namespace):
    """(examples, label_names, training texts to keep probes away from)."""
    if args.data:
        from cod.data.readers import load

        data = load(args.data)
        return list(data.examples), list(data.label_names), []
    from cod.data.tasks import load_task

    splits = load_task(args.task or "demo")
    return list(getattr(splits, args.split)), list(splits.label_names), [e.text for e in splits.train]
