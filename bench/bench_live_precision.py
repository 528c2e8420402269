"""The demo teacher in float32 (its canonical answers) against its bfloat16 live-preview copy: agreement on the demo
test split and the cost of a live micro-batch of new texts.

    python bench/bench_live_precision.py [--n 1000] [--batch 8] [--repeats 20] [--threads 1 2]

Agreement: labels, max and mean |p diff| over the first `--n` test texts, and how many previews fall within the
recheck margin (COD_LIVE_RECHECK_MARGIN, answered by the float32 teacher in the app). Speed: `--repeats` forwards of
`--batch` random test texts (new to both models, as a live micro-batch), median and p95 per forward, per thread count.
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


def agreement(model, preview, tokenizer, texts: list[str], margin: float) -> None:
    """Print label agreement and probability differences of `preview` against `model` on `texts`."""
    import numpy as np

    from cod.modeling.inference import predict_logits, softmax

    t = time.perf_counter()
    canonical = softmax(predict_logits(model, tokenizer, texts))  # (n, num_labels)
    t_canonical = time.perf_counter() - t
    t = time.perf_counter()
    fast = softmax(predict_logits(preview, tokenizer, texts))
    t_fast = time.perf_counter() - t
    diff = np.abs(fast - canonical)
    top = np.sort(fast, axis=1)
    close = (top[:, -1] - top[:, -2]) < margin
    labels_agree = (fast.argmax(1) == canonical.argmax(1)).mean()
    print(
        f"agreement on {len(texts)} demo test texts: labels {labels_agree:.4f}, max |p diff| {diff.max():.4f}, "
        f"mean |p diff| {diff.mean():.5f}; previews within the recheck margin {margin}: {close.sum()} "
        f"({close.mean():.1%}); scoring them all: float32 {t_canonical:.1f} s, bfloat16 {t_fast:.1f} s "
        f"(load {load()})"
    )


def speed(models: dict, tokenizer, texts: list[str], batch: int, repeats: int, threads: int) -> None:
    """Print the median and p95 wall time of a forward of `batch` new texts, per model."""
    import numpy as np
    import torch

    from cod.modeling.inference import predict_logits

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    draws = [[texts[i] for i in rng.choice(len(texts), batch, replace=False)] for _ in range(repeats + 2)]
    for name, model in models.items():
        times = []
        for j, draw in enumerate(draws):
            t = time.perf_counter()
            predict_logits(model, tokenizer, [f"{x} {j}" for x in draw], batch_size=32)  # new texts, one forward
            times.append(time.perf_counter() - t)
        times = sorted(times[2:])  # the first two warm up
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        median = 1000 * statistics.median(times)
        print(
            f"  {name:8s} {threads} thread(s): forward of {batch} new texts median {median:.0f} ms, "
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
    from cod.modeling.precision import bfloat16_copy, cpu_has_fast_bfloat16, recheck_margin

    hardware = cpu_has_fast_bfloat16()
    print(f"{os.cpu_count()} cores, bfloat16 hardware: {hardware}, torch {torch.__version__}, load {load()}")
    model, tokenizer = load_classifier(str(demo_teacher_path()), trusted=True)
    preview = bfloat16_copy(model)
    texts = [e.text for e in load_task("demo").test]
    torch.set_num_threads(max(args.threads))
    agreement(model, preview, tokenizer, texts[: args.n], recheck_margin())
    for threads in args.threads:
        speed({"float32": model, "bfloat16": preview}, tokenizer, texts, args.batch, args.repeats, threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
