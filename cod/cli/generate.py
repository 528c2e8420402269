"""`python -m cod generate`: propose a counterfactual for each example, verified by the teacher, into a JSONL file.

Results are cached on disk as they come (per example), so a run interrupted half-way and started again
resumes from its cache; the output file is rewritten in full by the run that finishes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from cod.cli._teacher import TEACHER_HELP, add_teacher_args
from cod.counterfactuals import DEFAULT_PROPOSER, PROPOSERS


def register(subparsers) -> None:
    """Add the `generate` command."""
    p = subparsers.add_parser(
        "generate",
        help="propose counterfactuals (minimal edits that flip the teacher) for a data file or task",
        description="Propose one counterfactual per example with the offline lexical search or an OpenAI-compatible "
        "LLM; every candidate is checked by the teacher. Writes one JSON object per example.",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE|TASK",
        help="a data file (CSV, JSONL, ...) or a built-in task (demo, sst2, ...)",
    )
    p.add_argument(
        "--split",
        default=None,
        help="a task's split (train, validation, test; default train) or a saved dataset's split",
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N examples")
    p.add_argument(
        "--k",
        type=int,
        default=None,
        metavar="K",
        help="only CoD's real half of the seeded k draw: " "the examples `cod distill --cod --k K --seed S` trains on",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the draw's seed, with --k (default 0)")
    p.add_argument("--teacher", default="demo", help=TEACHER_HELP)
    add_teacher_args(p, base_url=False)
    p.add_argument(
        "--guide-teacher",
        default="",
        metavar="NAME",
        help="a cheap classifier with the same labels (e.g. demo) that the search runs against; the teacher then "
        "checks each counterfactual once and its verdict counts (for slow LLM or API teachers)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--batch-size", type=int, default=32, help="teacher batch size (default 32)")
    p.add_argument(
        "--proposer", choices=PROPOSERS, default=DEFAULT_PROPOSER, help=f"(default {DEFAULT_PROPOSER}: see README)"
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="LABEL",
        help="one target class for all (default: the other class / runner-up)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the JSONL file to write")
    p.add_argument(
        "--cache-dir", default=None, metavar="DIR", help="cache folder (default $COD_HOME/cache/<proposer>)"
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    p.add_argument(
        "--shrink",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="revert edits the flip does not need (default on)",
    )
    lex = p.add_argument_group("lexical proposer")
    lex.add_argument("--max-edits", type=int, default=None, metavar="N", help="word edits at most (default 3)")
    lex.add_argument("--beam-width", type=int, default=None, metavar="N", help="beam width (default 4)")
    lex.add_argument("--positions", type=int, default=None, metavar="N", help="salient positions tried (default 6)")
    lex.add_argument(
        "--substitutes", type=int, default=None, metavar="N", help="candidate words per position (default 4)"
    )
    lex.add_argument(
        "--screen-precision",
        default=None,
        choices=("auto", "bfloat16", "teacher"),
        help="the search's teacher forwards: auto (a bfloat16 copy on CPUs with AMX/AVX512-BF16; what is kept is "
        "scored by the teacher as loaded), bfloat16, or teacher (all as loaded)",
    )
    llm = p.add_argument_group("LLM proposer (key from COD_LLM_API_KEY or OPENAI_API_KEY)")
    llm.add_argument(
        "--llm-base-url",
        default=None,
        metavar="URL",
        help="OpenAI-compatible endpoint (default COD_LLM_BASE_URL or OpenAI)",
    )
    llm.add_argument(
        "--llm-model", default=None, metavar="NAME", help="model name (default COD_LLM_MODEL or gpt-4o-mini)"
    )
    llm.add_argument(
        "--llm-task", default=None, choices=("sentiment", "grammaticality", "generic"), help="prompt template"
    )
    llm.add_argument("--task-description", default=None, help="task description for the generic prompt")
    llm.add_argument("--candidates", type=int, default=None, metavar="N", help="rewrites asked per request")
    llm.add_argument("--rounds", type=int, default=None, metavar="R", help="rounds with the teacher's feedback")
    llm.add_argument("--concurrency", type=int, default=None, metavar="C", help="requests in flight")
    p.set_defaults(func=run)


def load_examples(source: str, split: str | None, limit: int | None, k: int | None = None, seed: int = 0):
    """(examples, label_names, description) from a built-in task's split or a data file; with `k`, the real half
    of the seeded k draw (the same draw as `cod distill`, through `cod.experiment`)."""
    from cod.config import DataConfig
    from cod.data.readers import load
    from cod.data.tasks import ALIASES, TASKS, load_task
    from cod.errors import ConfigError, DataError

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}.")
    if k is not None:
        from cod.experiment import open_source
        from cod.experiment import split as draw

        if split:
            raise ConfigError("--split does not go with --k: the draw is made from the training examples.")
        found = open_source(source)
        real = draw(found, k, seed).real_half
        return real[:limit] if limit else real, list(found.label_names), found.description
    key = source.strip().lower()
    if not Path(source).expanduser().exists() and (key in TASKS or key in ALIASES):
        task = load_task(source)
        name = split or "train"
        if name not in {"train", "validation", "test"}:
            raise ConfigError(f"--split {name!r} is not one of train, validation, test for the task {source!r}.")
        examples, names, description = getattr(task, name), list(task.label_names), task.description
    else:
        data = load(source, DataConfig(split=split) if split else None)
        examples, names, description = data.examples, list(data.label_names), ""
    examples = examples[:limit] if limit else examples
    if not examples:
        raise DataError(f"{source!r} ({split or 'train'}) has no examples to propose counterfactuals for.")
    return list(examples), names, description


def _proposer(args, description: str):
    from cod.config import LexicalConfig, LLMConfig
    from cod.counterfactuals import make_proposer

    cache = False if args.no_cache else args.cache_dir
    if args.proposer == "lexical":
        settings = {
            k: getattr(args, k)
            for k in ("max_edits", "beam_width", "positions", "substitutes", "screen_precision")
            if getattr(args, k) is not None
        }
        return make_proposer("lexical", LexicalConfig(shrink=args.shrink, **settings), cache_dir=cache)
    settings = {
        "base_url": args.llm_base_url,
        "model": args.llm_model,
        "task": args.llm_task,
        "candidates": args.candidates,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "task_description": args.task_description if args.task_description is not None else description or None,
    }
    config = LLMConfig().replace(**{k: v for k, v in settings.items() if v is not None})
    return make_proposer("llm", config, cache_dir=cache)


def run(args: argparse.Namespace) -> int:
    """Handler of `generate`: load, propose in chunks (appending to --out), print the summary."""
    from tqdm import tqdm

    from cod.cli._teacher import load_teacher_from_args, say_estimate
    from cod.errors import ConfigError
    from cod.modeling.loading import check_labels

    out = Path(args.out).expanduser()
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a folder: give a file name such as cfes.jsonl.")
    if not out.parent.exists():
        raise ConfigError(
            f"The folder of --out ({str(out.parent)!r}) does not exist: create it or choose another path."
        )
    examples, names, description = load_examples(args.data, args.split, args.limit, args.k, args.seed)
    proposer = _proposer(args, description)
    teacher = load_teacher_from_args(args, names, device=args.device, batch_size=args.batch_size)
    check_labels(teacher.label_names, names)
    if args.guide_teacher:
        from cod.counterfactuals.guided import GuidedProposer, check_guide
        from cod.modeling.loading import load_teacher

        guide = load_teacher(args.guide_teacher, device=args.device, batch_size=args.batch_size, label_names=names)
        check_guide(guide, teacher)
        proposer = GuidedProposer(proposer, guide, shrink=args.proposer == "llm" and args.shrink)
    say_estimate(teacher, [e.text for e in examples])  # API teachers: the originals' cost (candidates come on top)
    if args.target is not None and args.target not in names:
        raise ConfigError(f"--target {args.target!r} is not one of the labels {names}.")

    from cod.counterfactuals.shrink import shrink

    start, passes0 = time.perf_counter(), teacher.forward_passes
    chunk = 16 if args.proposer == "lexical" else max(4 * proposer.config.concurrency, 16)
    records = []
    bar = tqdm(total=len(examples), unit="ex", desc=f"{args.proposer} counterfactuals", file=sys.stderr)
    try:
        with open(out, "w", encoding="utf-8") as f:
            for i in range(0, len(examples), chunk):
                part = examples[i : i + chunk]
                done_before = bar.n
                cfs = proposer.propose(
                    part,
                    teacher,
                    target=args.target,
                    on_progress=lambda d, t, done_before=done_before: bar.update(done_before + d - bar.n),
                )
                if args.proposer == "llm" and args.shrink and not args.guide_teacher:  # guided: the guide shrinks
                    cfs = [shrink(cf, teacher) for cf in cfs]
                for cf in cfs:
                    record = cf.to_record(names)
                    records.append(record)
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted after {len(records)} of {len(examples)} examples (written to {out}); "
            "run the same command again to resume from the cache.",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
    print(summary(records, time.perf_counter() - start, teacher.forward_passes - passes0, out))
    return 0


def summary(records: list[dict], seconds: float, forward_passes: int, out: Path) -> str:
    """The lines printed after a run: flip rate, median words changed, time, tokens, errors."""
    from cod.counterfactuals.guided import guide_confirmation

    total = len(records)
    flipped = [r for r in records if r["flipped"]]
    errors = [r for r in records if r.get("error")]
    words = [r["words_changed"] for r in flipped]
    tokens = sum(int(r.get("tokens") or 0) for r in records)
    median = f"{statistics.median(words):g}" if words else "n/a"
    lines = [
        f"wrote {total} counterfactuals to {out}",
        f"flip rate {len(flipped) / max(total, 1):.1%} ({len(flipped)}/{total}); "
        f"median words changed {median} (flipped only)",
        f"time {seconds:.1f} s ({total / max(seconds, 1e-9) * 60:.1f} examples/minute); tokens {tokens}; "
        f"teacher forward passes {forward_passes}",
    ]
    guided = guide_confirmation(records)
    if guided["guide"]:
        lines.append(
            f"guide {guided['guide']}: the teacher confirmed {guided['teacher_confirmed']} of the guide's "
            f"{guided['guide_flipped']} flips; {guided['unguidable']} example(s) the guide could not search "
            "(it already predicts the target)"
        )
    if errors:
        lines.append(f"{len(errors)} example(s) failed, e.g.: {errors[0]['error']}")
    return "\n".join(lines)
