"""How well the fluency scores agree with a person's judgement, on counterfactual pairs labelled by eye.

`bench/data/fluency_eye_labels.jsonl` holds the first 50 pairs of a `bench_lexical.py --n 200` run per proposer
version, each labelled fluent or not (grammatical English a person would write; a changed meaning is allowed) before
either score was looked at. For each score this prints how often "score >= 0" (no less fluent than the original)
matches the label, and the two kinds of disagreement.

    nice -n 10 .venv/bin/python bench/bench_fluency_agreement.py [--labels bench/data/fluency_eye_labels.jsonl]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    """Score every labelled pair with each score and print its agreement with the labels, per proposer version."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(Path(__file__).parent / "data" / "fluency_eye_labels.jsonl"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from cod.counterfactuals.fluency import FLUENCY_KINDS, load_fluency_scorer
    from cod.io import read_jsonl

    torch.set_num_threads(args.threads)
    rows = list(read_jsonl(args.labels))
    scorer = load_fluency_scorer()
    for version in dict.fromkeys(r["proposer"] for r in rows):
        part = [r for r in rows if r["proposer"] == version]
        fluent = np.array([r["fluent"] for r in part])
        print(f"{version}: {fluent.sum()} of {len(part)} pairs fluent by eye ({fluent.mean():.0%})")
        for kind in FLUENCY_KINDS:
            score = scorer.fluency([r["text"] for r in part], [r["counterfactual"] for r in part], kind=kind)
            says = score >= 0
            print(
                f"  {kind}: agrees on {(says == fluent).sum()} of {len(part)}; scored >= 0 {says.mean():.0%}; "
                f"fluent by eye but < 0: {(fluent & ~says).sum()}; not fluent but >= 0: {(~fluent & says).sum()}"
            )


if __name__ == "__main__":
    main()
