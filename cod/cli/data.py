"""`python -m cod data ...`: inspect a data file, draw a few-shot sample, list the built-in tasks."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the `data` command group."""
    group = subparsers.add_parser("data", help="inspect data files, sample few-shot sets, list built-in tasks")
    sub = group.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    inspect = sub.add_parser("inspect", help="read a file (or Hub dataset id) and report rows, labels and problems")
    inspect.add_argument(
        "source", metavar="FILE", help="CSV, TSV, JSONL, JSON, Parquet, a save_to_disk folder or a Hub id"
    )
    _add_reading_options(inspect)
    inspect.add_argument("--head", type=int, default=5, metavar="N", help="show the first N examples (default 5)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    inspect.set_defaults(func=_inspect)

    sample = sub.add_parser(
        "sample", help="draw the seeded, class-balanced few-shot set from a file or a task's train split"
    )
    sample.add_argument("source", metavar="FILE_OR_TASK", help="a data file or a built-in task name (demo, sst2, ...)")
    sample.add_argument("-k", type=int, default=16, help="examples in the draw, k // classes per class (default 16)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--cod", action="store_true", help="show only CoD's real half (the first k/2 of the draw)")
    _add_reading_options(sample)
    sample.add_argument("--json", action="store_true", help="print a JSON list of {text, label}")
    sample.set_defaults(func=_sample)

    tasks = sub.add_parser("tasks", help="list the built-in tasks")
    tasks.set_defaults(func=_tasks)


def _add_reading_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--text-column", metavar="C", help="the text column (default: guessed: text, sentence, review, ...)"
    )
    p.add_argument("--pair-column", metavar="C", help="a second text column for pair tasks")
    p.add_argument("--label-column", metavar="L", help="the label column (default: guessed: label, sentiment, ...)")
    p.add_argument("--label-names", metavar="A,B", help="comma-separated label names in class order")
    p.add_argument("--split", help="split of a Hub dataset or saved DatasetDict (default train)")
    p.add_argument("--subset", help="Hub dataset configuration (e.g. sst2 for nyu-mll/glue)")
    p.add_argument("--max-chars", type=int, default=2000, help="truncate longer texts (default 2000)")
    p.add_argument("--max-file-mb", type=float, help="refuse larger files, in MB (default 200, or COD_MAX_FILE_MB)")
    p.add_argument("--max-rows", type=int, help="refuse sources with more rows (default 100000, or COD_MAX_ROWS)")
    p.add_argument(
        "--max-decompressed-mb",
        type=float,
        help="refuse sources with more data once decompressed, in MB " "(default 200, or COD_MAX_DECOMPRESSED_MB)",
    )
    p.add_argument("--drop-duplicates", action="store_true", help="drop repeated texts (default: keep and report)")
    p.add_argument(
        "--drop-rare-labels", action="store_true", help="drop labels seen once among many instead of failing"
    )


def _config(args):
    from cod.config import DataConfig

    names = tuple(n.strip() for n in args.label_names.split(",")) if args.label_names else None
    limits = {
        name: getattr(args, name)
        for name in ("max_file_mb", "max_rows", "max_decompressed_mb")
        if getattr(args, name) is not None
    }  # unset: the default, or the environment's override
    return DataConfig(
        text_column=args.text_column,
        text_pair_column=args.pair_column,
        label_column=args.label_column,
        label_names=names,
        split=args.split,
        subset=args.subset,
        max_chars=args.max_chars,
        drop_duplicates=args.drop_duplicates,
        drop_rare_labels=args.drop_rare_labels,
        **limits,
    )


def _inspect(args) -> int:
    from cod.data.readers import load

    data = load(args.source, _config(args))
    head = [
        {
            "row": r,
            "text": e.text,
            **({"text_pair": e.text_pair} if e.text_pair is not None else {}),
            "label": data.label_names[e.label],
        }
        for r, e in zip(data.row_numbers, data.examples[: max(args.head, 0)])
    ]
    if args.json:
        out = {
            **data.report.to_dict(),
            "label_names": data.label_names,
            "text_column": data.text_column,
            "label_column": data.label_column,
            "text_pair_column": data.text_pair_column,
            "head": head,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print("\n".join(data.report.lines()))
    if head:
        print(f"First {len(head)} examples:")
        for h in head:
            pair = f"  ||  {_short(h['text_pair'])}" if "text_pair" in h else ""
            print(f"  row {h['row']:>6}  [{h['label']}]  {_short(h['text'])}{pair}")
    return 0


def _sample(args) -> int:
    from cod.experiment import open_source, split

    source = open_source(args.source, _config(args))
    splits = split(source, args.k, args.seed)
    names = source.label_names
    draw = splits.real_half if args.cod else splits.few_shot
    if args.json:
        print(json.dumps([{"text": e.text, "label": names[e.label]} for e in draw], indent=2, ensure_ascii=False))
        return 0
    print(f"{len(draw)} examples (k={args.k}, seed={args.seed}{', CoD real half' if args.cod else ''}):")
    for e in draw:
        print(f"  [{names[e.label]}]  {_short(e.text)}")
    print("\n".join(splits.lines()))
    return 0


def _tasks(args) -> int:
    from cod.data.tasks import TASKS

    for info in TASKS.values():
        where = (
            "embedded, offline (also: demo)"
            if info.hub_id is None
            else f"{info.hub_id}" + (f" / {info.subset}" if info.subset else "")
        )
        print(f"{info.name:<16} {'/'.join(info.label_names):<26} {where}\n{'':<16} {info.description}")
    return 0


def _short(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
