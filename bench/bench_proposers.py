"""The lexical proposer against the embedded LLM as an offline LLM proposer (`demo-llm`), on the demo task.

Both start cold (no disk cache, an empty teacher cache) on the same demo test sentences; printed per proposer: flip
rate, words changed (flipped), fluency (share >= 0, median), examples per minute (wall clock and estimated from
CPU time on dedicated cores), and a few pairs. The LLM proposer runs greedy (temperature 0), `--rounds` requests per
example (a local model is asked for one plain-text rewrite per request, after two worked examples), its workers'
requests batched into one `generate`.

    nice -n 10 .venv/bin/python bench/bench_proposers.py [--n 40] [--threads 2] [--rounds 2] \
        [--llm-model demo-llm,demo-llm-qwen]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(name: str, proposer, examples, teacher, threads: int) -> list:
    """Propose for every example; print the figures and three pairs; return the counterfactuals."""
    from cod.counterfactuals.fluency import fluent_share

    getattr(teacher, "_logits", {}).clear()  # both start with a cold teacher cache
    t0, c0 = time.perf_counter(), time.process_time()
    cfs = proposer.propose(examples, teacher)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    flipped = [cf for cf in cfs if cf.flipped]
    words = [cf.words_changed for cf in flipped]
    fluency = [cf.fluency for cf in cfs if cf.fluency is not None]
    print(
        f"{name}: flip rate {len(flipped) / len(cfs):.1%} ({len(flipped)}/{len(cfs)}); "
        f"median words changed {statistics.median(words) if words else float('nan'):g} (flipped); "
        f"fluent by the score {fluent_share(cfs):.1%}, "
        f"median {statistics.median(fluency) if fluency else float('nan'):+.2f}; "
        f"{len(cfs) / wall * 60:.1f} examples/min wall ({wall:.0f} s, load {os.getloadavg()[0]:.1f}), "
        f"{len(cfs) / (cpu / threads) * 60:.1f} on {threads} dedicated cores (from {cpu:.0f} CPU-s); "
        f"errors {sum(bool(cf.error) and not cf.counterfactual for cf in cfs)}"
    )
    for cf in cfs[:: max(len(cfs) // 3, 1)][:3]:
        mark = "FLIP" if cf.flipped else "----"
        f = f"{cf.fluency:+.2f}" if cf.fluency is not None else "  n/a"
        print(f"  {mark} {f} {cf.text!r}\n             -> {cf.counterfactual!r}")
    return cfs


def main() -> None:
    """Run both proposers on the first `--n` demo test sentences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="demo test sentences (default 40)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="LLM requests per example (default 2)")
    parser.add_argument("--candidates", type=int, default=3, help="rewrites per LLM request (default 3)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="examples in flight: the generate batch (default 8)"
    )
    parser.add_argument(
        "--llm-model", default="demo-llm", help="embedded LLMs, comma-separated: demo-llm, demo-llm-qwen (opt-in)"
    )
    parser.add_argument("--skip-lexical", action="store_true", help="run the LLM proposer only")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from cod.config import LexicalConfig, LLMConfig
    from cod.counterfactuals.fluency import load_fluency_scorer
    from cod.counterfactuals.lexical import LexicalProposer
    from cod.counterfactuals.llm import LLMProposer
    from cod.data.tasks import load_task
    from cod.modeling.loading import load_teacher

    task = load_task("demo")
    examples = task.test[: args.n]
    teacher = load_teacher("demo", device="cpu")
    load_fluency_scorer()  # loaded once per process (the same weights serve the LLM proposer)
    print(f"demo test[:{args.n}], torch threads {torch.get_num_threads()}, {os.cpu_count()} cores")
    if not args.skip_lexical:
        lexical = LexicalProposer(LexicalConfig(), cache_dir=False)
        lexical.kit(teacher)  # per-teacher setup, not counted
        run("lexical", lexical, examples, teacher, args.threads)
    for model in args.llm_model.split(","):
        config = LLMConfig(
            model=model.strip(),
            base_url=None,
            temperature=0.0,
            rounds=args.rounds,
            candidates=args.candidates,
            concurrency=args.concurrency,
        )
        llm = LLMProposer(config, cache_dir=False)
        # A local model is asked for one plain-text rewrite per request (prompts.build_local_messages).
        run(f"llm {config.model} ({args.rounds} rounds, greedy)", llm, examples, teacher, args.threads)
        print(f"LLM generate batches {llm._local.batches}")


if __name__ == "__main__":
    main()
