"""The demo teacher in float32 (its canonical answers) against its bfloat16 live-preview copy: agreement on the demo
test split and the cost of a live micro-batch of new texts.

    python bench/bench_live_precision.py [--n 1000] [--batch 8] [--repeats 20] [--threads 1 2]

Agreement: labels, max and mean |p diff| over the first `--n` test texts, and how many previews fall within the
recheck margin (COD_LIVE_RECHECK_MARGIN, answered by the float32 teacher in the app). Speed, through the app's own
code paths (the teacher's forward; the preview's, traced and eager): `--repeats` forwards of `--batch` random test
texts made new (as a live micro-batch), median and p95 per forward, per torch thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def agreement(teacher, preview, texts: list[str]) -> None:
    """Print label agreement and probability differences of the bfloat16 `preview` against `teacher` on `texts`."""
    import numpy as np

    from cod.modeling.inference import softmax

    t = time.perf_counter()
    canonical = teacher.predict_proba(texts)  # (n, num_labels), the stored answers
    t_canonical = time.perf_counter() - t
    t = time.perf_counter()
    fast = softmax(preview._forward(texts))  # the bfloat16 answers themselves, before any recheck
    t_fast = time.perf_counter() - t
    diff = np.abs(fast - canonical)
    top = np.sort(fast, axis=1)
    close = (top[:, -1] - top[:, -2]) < preview.margin
    labels_agree = (fast.argmax(1) == canonical.argmax(1)).mean()
    shown = np.where(close[:, None], canonical, fast)  # what the app shows: near-ties rechecked in float32
    print(
        f"agreement on {len(texts)} demo test texts: labels {labels_agree:.4f}, max |p diff| {diff.max():.4f}, "
        f"mean |p diff| {diff.mean():.5f}; previews within the recheck margin {preview.margin}: {close.sum()} "
        f"({close.mean():.1%}); labels as shown (near-ties rechecked): "
        f"{(shown.argmax(1) == canonical.argmax(1)).mean():.4f}; scoring them all: float32 {t_canonical:.1f} s, "
        f"bfloat16 {t_fast:.1f} s (load {load()})"
    )


def speed(paths: dict, texts: list[str], batch: int, repeats: int, threads: int) -> None:
    """Print the median and p95 wall time of a forward of `batch` new texts, per path (`fn(texts)`)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    draws = [[texts[i] for i in rng.choice(len(texts), batch, replace=False)] for _ in range(repeats + 2)]
    for name, forward in paths.items():
        times = []
        for j, draw in enumerate(draws):
            new = [f"{x} {name} {threads} {j}" for x in draw]  # new to every path: nothing answered from a cache
            t = time.perf_counter()
            forward(new)
            times.append(time.perf_counter() - t)
        times = sorted(times[2:])  # the first two warm up
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        median = 1000 * statistics.median(times)
        print(
            f"  {name:16s} {threads} thread(s): forward of {batch} new texts median {median:.0f} ms, "
            f"p95 {1000 * p95:.0f} ms (load {load()})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="demo test texts for agreement")
    parser.add_argument("--batch", type=int, default=8, help="texts per live forward")
    parser.add_argument("--repeats", type=int, default=20, help="forwards timed per model and thread count")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time")
    args = parser.parse_args()
    import torch

    from cod.data.tasks import load_task
    from cod.modeling.demo import demo_teacher_path
    from cod.modeling.loading import load_classifier
    from cod.modeling.precision import PreviewScorer, cpu_has_fast_bfloat16
    from cod.modeling.scoring import Teacher

    hardware = cpu_has_fast_bfloat16()
    print(f"{os.cpu_count()} cores, bfloat16 hardware: {hardware}, torch {torch.__version__}, load {load()}")
    torch.set_num_threads(max(args.threads))
    teacher = Teacher(*load_classifier(str(demo_teacher_path()), trusted=True))  # not primed: every text runs
    t = time.perf_counter()
    preview = PreviewScorer(teacher)
    print(f"bfloat16 copy made and traced in {time.perf_counter() - t:.1f} s; traced: {preview.graph is not None}")
    eager = PreviewScorer(teacher)
    eager.graph = None
    texts = [e.text for e in load_task("demo").test]
    agreement(teacher, preview, texts[: args.n])
    paths = {
        "float32 teacher": teacher._forward,
        "bfloat16 eager": eager._forward,
        "bfloat16 traced": preview._forward,
    }
    for threads in args.threads:
        speed(paths, texts, args.batch, args.repeats, threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
