"""The embedded LLM (SmolLM2-135M-Instruct, `demo-llm`) as a zero-shot teacher on the demo task, and distilled.

The prompt, label words and calibration are named from `bench/bench_llm_prompts.py`'s candidates, which that bench
compares on the validation split (`--prompt`, `--words`, `--calibrate`; the defaults are cod's own default prompt).
Part 1 scores a fixed seeded subset of the demo test split (the sweep's own `--test-limit` subset, so part 2 reuses
the cached scores) and prints accuracy, macro-F1, mean label mass and texts per second, with and without contextual
calibration (the raw scores are cached, so calibration costs three extra forwards, not a second pass).
Part 2 runs `cod sweep` with that teacher as chosen: KD vs KD+CoD into the demo student (MiniLM) at the given k and
seeds, counterfactuals from the offline lexical proposer guided by the LLM teacher, and prints two paired tables:
the student's test accuracy (gold labels) and its agreement with the teacher. Every teacher score is cached on disk
(`$COD_HOME/cache/teacher`) and every draw's counterfactuals in `--out`, so a re-run only trains.

    nice -n 10 python bench/bench_llm_teacher.py [--test-limit 300] [--k 16,32] [--seeds 0,1,2]
    python bench/bench_llm_teacher.py --prompt review-question --words many --calibrate
    python bench/bench_llm_teacher.py --zero-shot-only --teacher demo-llm-qwen
    python bench/bench_llm_teacher.py --teacher demo-llm-qwen --prompt completion --words many --guide-teacher demo \
        --k 16,32 --seeds 0    # one seed per call; the next call resumes the folder (cells, counterfactuals, scores)

`--guide-teacher demo`: the lexical search runs against the demo classifier and the LLM scores each resulting
counterfactual once (its verdict is the label); without it every counterfactual costs the LLM ~40 forwards.

Figures depend on the machine; on a shared 2-core machine they are pessimistic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def teacher_options(args):
    """The `LLMTeacherOptions` of the named candidate prompt and label words (bench_llm_prompts.py)."""
    from bench_llm_prompts import CANDIDATES, LABEL_SETS

    from cod.modeling.teachers import LLMTeacherOptions
    from cod.modeling.teachers.prompt import DEFAULT_TEMPLATE

    template, system, chat = CANDIDATES[args.prompt]
    template = DEFAULT_TEMPLATE if template is None else template  # "default": cod's, not demo-llm's validated one
    return LLMTeacherOptions.make(
        LABEL_SETS[args.words], template=template, system=system, chat_template=chat, calibrate=args.calibrate
    )


def paired_table(results, metric: str) -> str:
    """Mean, interval and the paired KD+CoD - KD difference of `metric` per method and k."""
    from cod.sweep.tables import summarise_results

    summary = summarise_results(results, metric=metric, methods=("kd", "kd+cod"))
    cols = [c for c in ("method", "k", "n_seeds", "mean", "ci_low", "ci_high", "paired_diff", "paired_ci_low")]
    cols += ["paired_ci_high", "seeds_won"]
    return summary[[c for c in cols if c in summary]].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def confirmation(out: Path, names) -> dict:
    """Flip counts over the sweep's CoD counterfactuals (k*-s*.jsonl): the teacher's, and the guide's it confirmed."""
    from cod.counterfactuals.guided import guide_confirmation

    records = [json.loads(line) for path in sorted(out.glob("counterfactuals/k*-s*.jsonl")) for line in open(path)]
    flipped = [r for r in records if r["flipped"]]
    words = sorted(r["words_changed"] for r in flipped)
    return {
        "files": len(list(out.glob("counterfactuals/k*-s*.jsonl"))),
        "counterfactuals": len(records),
        "teacher_flipped": len(flipped),
        "median_words_changed": words[len(words) // 2] if words else None,
        **guide_confirmation(records),
    }


def zero_shot(teacher, examples, calibrate: bool) -> dict:
    """Accuracy, macro-F1 and label mass of `teacher` on `examples`."""
    import numpy as np
    from sklearn.metrics import f1_score

    teacher.calibrate = calibrate
    texts = [e.text for e in examples]
    gold = np.array([e.label for e in examples])
    pred = teacher.predict(texts)
    probs = teacher.predict_proba(texts)
    return {
        "calibrated": calibrate,
        "accuracy": round(float((pred == gold).mean()), 4),
        "macro_f1": round(float(f1_score(gold, pred, average="macro")), 4),
        "predicted_positive_share": round(float(pred.mean()), 4),
        "mean_label_mass": round(float(teacher.label_mass(texts).mean()), 4),
        "mean_p_positive": round(float(probs[:, -1].mean()), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="demo-llm", help="a causal LM: demo-llm, demo-llm-qwen, a folder, .gguf")
    parser.add_argument("--prompt", default="default", help="a prompt of bench_llm_prompts.py [default]")
    parser.add_argument("--words", default="names", help="label words of bench_llm_prompts.py [names]")
    parser.add_argument("--calibrate", action="store_true", help="distil the calibrated teacher")
    parser.add_argument(
        "--from-selection",
        action="store_true",
        help="take prompt, words and calibration from runs/llm-prompts/TEACHER.json (bench_llm_prompts.py's choice)",
    )
    parser.add_argument("--test-limit", type=int, default=300, help="seeded subset of the test split [300]")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", default="16,32")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="", help="sweep folder [runs/llm-teacher/TEACHER-PROMPT-WORDS[-calibrated]]")
    parser.add_argument("--max-steps", type=int, default=100, help="optimizer steps per cell [100]")
    parser.add_argument("--max-validation", type=int, default=200, help="validation texts choosing checkpoints [200]")
    parser.add_argument(
        "--guide-teacher",
        default="",
        help="a cheap classifier (e.g. demo) the lexical search runs against; the LLM checks each result once",
    )
    parser.add_argument("--zero-shot-only", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="score again even when the disk cache has the texts")
    args = parser.parse_args()
    if args.from_selection:
        best = json.loads((ROOT / "runs" / "llm-prompts" / f"{args.teacher}.json").read_text())["best"]
        args.prompt, args.words, args.calibrate = best["prompt"], best["words"], best["calibrated"]
        print(f"chosen on validation: {json.dumps(best)}", flush=True)

    import torch

    from cod.config import SweepConfig
    from cod.data.tasks import load_task
    from cod.modeling.loading import load_teacher
    from cod.sweep import sweep
    from cod.sweep.run import _subset

    torch.set_num_threads(args.threads)
    splits = load_task("demo")
    options = teacher_options(args)
    test = _subset(splits.test, args.test_limit)  # the subset `cod sweep --test-limit` evaluates on
    start = time.perf_counter()
    teacher = load_teacher(
        args.teacher, device="cpu", batch_size=args.batch_size, label_names=splits.label_names, options=options
    )
    if args.no_cache:
        teacher.disk = None
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    raw = zero_shot(teacher, test, calibrate=False)
    score_s = time.perf_counter() - start
    calibrated = zero_shot(teacher, test, calibrate=True)
    cost = teacher.cost
    speed = cost["forwards"] / score_s if cost["forwards"] else None
    report = {
        "teacher": args.teacher,
        "prompt": args.prompt,
        "words": args.words,
        "load_average": os.getloadavg(),
        "test_examples": len(test),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "load_seconds": round(load_s, 1),
        "score_seconds": round(score_s, 1),
        "texts_scored": cost["forwards"],
        "cache_hits": cost["cache_hits"],
        "texts_per_second": None if speed is None else round(speed, 2),
        "content_free_probs": [round(float(p), 4) for p in teacher.calibration()],
        "label_tokens": teacher.info().get("label_tokens"),
        "raw": raw,
        "calibrated": calibrated,
    }
    print(json.dumps(report, indent=1), flush=True)
    if args.zero_shot_only:
        return 0
    teacher.calibrate = args.calibrate  # the sweep distils the teacher as chosen on validation
    # One folder per teacher setting: a sweep resumes the cells it finds, which must come from this very teacher.
    out = Path(args.out or f"runs/llm-teacher/{args.teacher}-{args.prompt}-{args.words}")
    out = out.with_name(out.name + "-calibrated") if args.calibrate and not args.out else out
    out = (
        out.with_name(f"{out.name}-guide-{Path(args.guide_teacher).name}")
        if args.guide_teacher and not args.out
        else out
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher_info.json").write_text(json.dumps(teacher.info(), indent=1, default=str))
    config = SweepConfig(
        task="demo",
        ks=tuple(int(k) for k in args.k.split(",")),
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        methods=("kd", "kd+cod"),
        out=str(out),
        teacher=args.teacher,
        probe_pairs=0,
        test_limit=args.test_limit,
        figures=False,
        guide_teacher=args.guide_teacher,
        distill={"max_steps": args.max_steps, "evaluations": 4, "max_validation": args.max_validation},
    )
    start = time.perf_counter()

    def show(event) -> None:
        if event.kind in ("cell", "error", "warning"):
            m = event.metrics or {}
            print(
                f"[{event.done}/{event.total}] {event.cell} {event.kind}: accuracy {m.get('student_accuracy', '')} "
                f"{event.message or ''} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )

    result = sweep(config, teacher=teacher, splits=splits, on_event=show)
    print(f"teacher test accuracy {result.teacher_accuracy:.3f} on the same {len(test)} texts")
    print("student test accuracy (gold labels):")
    print(paired_table(result.results, "student_accuracy"))
    print("student agreement with the teacher (test):")
    print(paired_table(result.results, "agreement"))
    print(f"counterfactuals (real halves): {confirmation(out, splits.label_names)}")
    print(
        f"sweep {time.perf_counter() - start:.0f} s; teacher cost {teacher.cost}; load {os.getloadavg()}; "
        f"folder {result.out_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
