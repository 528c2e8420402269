"""`python -m cod project ...`: create, list, show, export and import curation projects in the store."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the `project` command group."""
    group = subparsers.add_parser("project", help="curation projects in the store ($COD_HOME/cod.db)")
    group.add_argument("--db", metavar="PATH", help="the store file (default $COD_DB, else $COD_HOME/cod.db)")
    sub = group.add_subparsers(dest="project_command", required=True, metavar="SUBCOMMAND")

    create = sub.add_parser(
        "create",
        help="start a project from a labelled data file or a built-in task: the draw "
        "and its held-out data, as the app makes them (it opens there)",
    )
    create.add_argument("--name", help="a new project name (default: made from the data file's name)")
    create.add_argument(
        "--data",
        required=True,
        metavar="FILE|TASK",
        help="CSV, TSV, JSONL, JSON, Parquet, a "
        "save_to_disk folder, a Hub id, or a built-in task (demo, sst2, ...)",
    )
    create.add_argument(
        "--validation",
        default=None,
        metavar="FILE|none",
        help="labelled examples that choose the "
        "checkpoint (default: the task's split, or the file's rows not drawn; 'none': the last step)",
    )
    create.add_argument(
        "--unlabelled",
        default=None,
        metavar="FILE",
        help="texts without labels: choose the " "checkpoint by agreement with the teacher on them",
    )
    create.add_argument("--teacher", default="demo", help="teacher model: Hub id, local path or 'demo' (default)")
    create.add_argument("--student", default="demo", help="student model: Hub id, local path or 'demo' (default)")
    create.add_argument("--k", type=int, default=16, help="few-shot budget k (default 16)")
    create.add_argument("--seed", type=int, default=0, help="seed of the few-shot draw (default 0)")
    create.add_argument("--text-column", metavar="C", help="the text column (default: guessed)")
    create.add_argument("--pair-column", metavar="C", help="a second text column for pair tasks")
    create.add_argument("--label-column", metavar="L", help="the label column (default: guessed)")
    create.add_argument("--label-names", metavar="A,B", help="comma-separated label names in class order")
    create.set_defaults(func=_create)

    listing = sub.add_parser("list", help="list projects with their counts")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    show = sub.add_parser("show", help="a project's settings, counts, recent runs and actions")
    show.add_argument("--name", required=True)
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=_show)

    export = sub.add_parser(
        "export", help="write the project's pairs with provenance (.jsonl, .csv or a datasets folder)"
    )
    export.add_argument("--name", required=True)
    export.add_argument("--out", required=True, metavar="FILE.jsonl|FILE.csv|DIR")
    export.add_argument(
        "--curated", action="store_true", help="only accepted and edited pairs (default: all, with status)"
    )
    export.set_defaults(func=_export)

    imp = sub.add_parser("import", help="create a project from an export (.jsonl, .csv or a folder)")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--name", help="the new project's name (default: made from the file's name)")
    imp.set_defaults(func=_import)


_SPLIT_NAMES = {"fewshot": "few-shot draw", "validation": "validation", "train": "source rows", "test": "test"}


def _store(args: argparse.Namespace):
    from cod.store import Store

    return Store(args.db) if args.db else Store()


def _name_for(store, path: str) -> str:
    """A valid project name, not yet taken, from a file's name (long or odd names are shortened and cleaned)."""
    from cod.store import project_name_for

    return project_name_for(path, [p.name for p in store.projects()])


def _create(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cod.config import DataConfig
    from cod.experiment import open_source, save_project, split

    names = tuple(n.strip() for n in args.label_names.split(",")) if args.label_names else None
    config = DataConfig(
        text_column=args.text_column,
        text_pair_column=args.pair_column,
        label_column=args.label_column,
        label_names=names,
    )
    source = open_source(args.data, config, validation=args.validation, unlabelled=args.unlabelled)
    if source.path and Path(source.path).expanduser().exists():
        source.path = str(Path(source.path).expanduser().resolve())
    splits = split(source, args.k, args.seed)
    with _store(args) as store:
        name = args.name or _name_for(store, args.data)
        project = save_project(store, name, source, splits, teacher=args.teacher, student=args.student)
        print(
            f"Created project {project.name!r}: {len(source.pool)} examples, labels {project.label_names}, "
            f"teacher {project.teacher}, student {project.student}, k {project.k}, seed {project.seed}"
        )
        for line in splits.lines():
            print(f"  {line}")
        for line in source.report.notes + source.report.warnings:
            print(f"  note: {line}")
        print(f"Store: {store.path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = []
        for p in store.projects():
            s = store.for_owner(p.owner).summary(p.name)  # names are unique per owner (a public Space has many)
            rows.append(
                {
                    "name": p.name,
                    "owner": p.owner or "(local)",
                    "k": p.k,
                    "drawn": s["splits"].get("fewshot", 0),
                    **s["counterfactuals"],
                    "runs": sum(s["runs"].values()),
                    "teacher": p.teacher,
                    "updated": p.updated_at[:19],
                }
            )
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return 0
        if not rows:
            print(
                f"No projects yet in {store.path}: "
                "create one with `python -m cod project create --name N --data FILE`."
            )
            return 0
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
        print("  ".join(c.ljust(widths[c]) for c in columns))
        for r in rows:
            print("  ".join(str(r[c]).ljust(widths[c]) for c in columns))
    return 0


def _show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        project = store.project(args.name)
        summary = store.summary(args.name)
        runs = store.runs(args.name)[:5]
        actions = store.actions(args.name)[-5:]
        if args.json:
            out = {
                **project.meta(),
                "created_at": project.created_at,
                "updated_at": project.updated_at,
                **summary,
                "can_undo": store.can_undo(args.name),
                "can_redo": store.can_redo(args.name),
                "recent_runs": [
                    {"id": r.id, "status": r.status, "metrics": r.metrics, "started_at": r.started_at} for r in runs
                ],
            }
            print(json.dumps(out, indent=2, ensure_ascii=False))
            return 0
        print(f"Project {project.name!r} (created {project.created_at[:19]}, changed {project.updated_at[:19]})")
        print(f"  task: {project.task or '-'}   data: {project.data_source or '-'}")
        print(f"  labels: {project.label_names}   columns: {project.columns or '-'}")
        print(f"  teacher: {project.teacher}   student: {project.student}   k: {project.k}   seed: {project.seed}")
        if project.settings:
            print(f"  settings: {json.dumps(project.settings, ensure_ascii=False)}")
        counts = ", ".join(f"{n} {s}" for s, n in summary["counterfactuals"].items())
        splits = ", ".join(f"{_SPLIT_NAMES.get(k, k)} {n}" for k, n in summary["splits"].items())
        print(
            f"  examples: {summary['examples']} ({splits or 'none'})   counterfactuals: {counts} "
            f"(curated {summary['curated']})"
        )
        print(f"  checkpoint selection: {project.settings.get('selection', 'validation')}")
        print(
            f"  actions: {summary['actions']} (undo {'yes' if store.can_undo(args.name) else 'no'}, "
            f"redo {'yes' if store.can_redo(args.name) else 'no'})   sweeps: {summary['sweeps']}"
        )
        for r in runs:
            metrics = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(r.metrics.items())[:4]
            )
            print(
                f"  run {r.id}: {r.kind} {r.status} (started {r.started_at[:19]}){'  ' + metrics if metrics else ''}"
                f"{'  ' + r.error if r.error else ''}"
            )
        for a in actions:
            what = f" of action {a.target} ({a.target_kind})" if a.target else ""
            print(f"  {a.at[:19]}  {a.kind}{what} by {a.source}: {len(a.counterfactual_ids)} counterfactual(s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    with _store(args) as store:
        out = store.export(args.name, args.out, which="curated" if args.curated else "all")
        n = len(store.counterfactuals(args.name, ("accepted", "edited") if args.curated else None))
        print(f"Wrote {n} pair(s) of project {args.name!r} to {out}")
        if n == 0 and out.suffix:
            print(
                "  note: a file with no pairs cannot be imported back; "
                "export to a folder to keep the project's settings."
            )
    return 0


def _import(args: argparse.Namespace) -> int:
    with _store(args) as store:
        project = store.import_file(args.file, args.name or _name_for(store, args.file))
        s = store.summary(project.name)
        counts = ", ".join(f"{n} {st}" for st, n in s["counterfactuals"].items())
        print(
            f"Imported {args.file} as project {project.name!r}: {s['examples']} examples, {counts}; "
            f"labels {project.label_names}"
        )
    return 0
