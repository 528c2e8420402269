"""`python -m cod predict --teacher demo "text" ... [--json]`: the teacher's probabilities per label."""

from __future__ import annotations

import argparse
import json
import sys

from cod.cli._teacher import TEACHER_HELP, add_teacher_args


def register(subparsers) -> None:
    """Add the `predict` command."""
    parser = subparsers.add_parser(
        "predict",
        help="print a teacher's probabilities per label for some texts",
        description="Score texts with a teacher (a classifier, a causal LM such as 'demo-llm', or api:MODEL). Texts "
        "come from the arguments, or one per line from standard input when none are given.",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to score (default: lines of stdin)")
    parser.add_argument("--teacher", default="demo", help=TEACHER_HELP)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda > mps > cpu)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text (longer texts are cut)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code to run")
    parser.add_argument("--json", action="store_true", help='print [{"text": ..., "probs": {label: p}}, ...]')
    add_teacher_args(parser, labels=True)
    parser.set_defaults(func=predict)


def predict(args: argparse.Namespace) -> int:
    """Handler of `predict`."""
    from cod.cli._teacher import load_teacher_from_args, say_estimate
    from cod.errors import ModelError

    texts = list(args.texts) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ModelError(
            'No text to score: pass texts as arguments (python -m cod predict "a fine film") or on stdin.'
        )
    teacher = load_teacher_from_args(
        args,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        trust_remote_code=args.trust_remote_code,
    )
    say_estimate(teacher, texts)
    probs = teacher.predict_proba(texts)  # (n, num_labels)
    rows = [
        {"text": text, "probs": {name: round(float(p), 6) for name, p in zip(teacher.label_names, row)}}
        for text, row in zip(texts, probs)
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        best = max(row["probs"], key=row["probs"].get)
        scores = "  ".join(f"{name} {p:.3f}" for name, p in row["probs"].items())
        print(f"{best:<10} {scores}  {row['text']}")
    return 0
