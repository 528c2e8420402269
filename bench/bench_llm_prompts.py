"""Choose an LLM teacher's prompt, label words and calibration for the demo task on the VALIDATION split only.

Every candidate prompt costs one forward per text (the whole next-token distribution is kept for the answer tokens
of every label-word set), so all label-word sets and calibration on/off are compared from the same forwards. Prints
one row per (prompt, label words, calibrated): validation accuracy, macro-F1, share answered positive and mean label
mass, then the best row by accuracy (ties: the larger label mass). The test split is never read here;
`bench/bench_llm_teacher.py` reports the chosen setting on test. Forwards are cached under `--out`, so a re-run
with more candidates only scores the new ones.

    nice -n 10 python bench/bench_llm_prompts.py [--teacher demo-llm] [--n 150] [--candidates a,b,c]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REVIEW = "Movie review: {text}\n\n"
# name -> (template, system, chat template on/off, the answer words the template names). Label words scored for
# every candidate: LABEL_SETS.
CANDIDATES = {
    "default": (None, "", "on"),
    "review-question": (REVIEW + "Is this movie review positive or negative?", "", "on"),
    "review-one-word": (
        REVIEW + "What is the sentiment of this review? Answer with one word: positive or negative.",
        "",
        "on",
    ),
    "review-system": (
        REVIEW + "Is this review positive or negative?",
        "You classify the sentiment of movie reviews. Answer with one word: positive or negative.",
        "on",
    ),
    "liked-yes-no": (REVIEW + "Did the reviewer like the movie? Answer yes or no.", "", "on"),
    "good-or-bad": (REVIEW + "Does the reviewer think the movie is good or bad? Answer with one word.", "", "on"),
    "task-description": (
        "Movie review snippets from Rotten Tomatoes: is the review negative or positive?\n\n"
        "Text: {text}\n\nAnswer with one word: {choices}.",
        "",
        "on",
    ),
    "completion": ("Movie review: {text}\nSentiment (positive or negative):", "", "off"),
    "plain-question": (REVIEW + "Is this movie review positive or negative?", "", "off"),
}
LABEL_SETS = {
    "names": {"negative": ["negative"], "positive": ["positive"]},
    "good-bad": {"negative": ["bad"], "positive": ["good"]},
    "yes-no": {"negative": ["no"], "positive": ["yes"]},
    "many": {
        "negative": ["negative", "bad", "terrible", "awful", "poor"],
        "positive": ["positive", "good", "great", "excellent", "fine"],
    },
}


def answer_ids(tokenizer, label_names, label_words) -> list[list[int]]:
    """The answer token ids per label, exactly as the teacher counts them."""
    from cod.modeling.teachers.causal_lm import label_token_ids
    from cod.modeling.teachers.prompt import Prompt

    return label_token_ids(tokenizer, Prompt.build(label_names, label_words))


def candidate_teacher(base, label_names, name: str):
    """A teacher sharing `base`'s weights with candidate `name`'s prompt (memory cache only)."""
    from cod.modeling.teachers.causal_lm import CausalLMTeacher
    from cod.modeling.teachers.prompt import Prompt

    template, system, chat = CANDIDATES[name]
    prompt = Prompt.build(label_names, None, template, system)
    return CausalLMTeacher(base.model, base.tokenizer, prompt, name=name, cache=False, chat_template=chat)


def forwards(teacher, texts: list[str], ids: list[int], path: Path, batch_size: int) -> dict[str, list[float]]:
    """text -> probabilities of the token `ids` at the answer position, cached in `path` (JSON)."""
    import torch

    stored = json.loads(path.read_text()) if path.exists() else {}
    todo = [t for t in dict.fromkeys(texts) if t not in stored]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        probs, _ = teacher.answer_probs(batch)
        for text, row in zip(batch, probs[:, torch.tensor(ids)].tolist()):
            stored[text] = row
        path.write_text(json.dumps(stored))
    return stored


def evaluate(rows, gold, free_rows, ids, label_ids) -> list[dict]:
    """Accuracy, macro-F1, positive share and label mass, raw and calibrated, for one label-word set."""
    import numpy as np
    from sklearn.metrics import f1_score

    column = {i: j for j, i in enumerate(ids)}

    def label_sums(matrix):  # (n, len(ids)) -> (n, L)
        return np.stack([matrix[:, [column[i] for i in group]].sum(1) for group in label_ids], axis=1)

    sums, free = label_sums(np.asarray(rows)), label_sums(np.asarray(free_rows))
    probs = sums / np.clip(sums.sum(1, keepdims=True), 1e-12, None)
    free_probs = (free / np.clip(free.sum(1, keepdims=True), 1e-12, None)).mean(0)
    out = []
    for calibrated in (False, True):
        p = probs / np.clip(free_probs, 1e-6, None) if calibrated else probs
        pred = p.argmax(1)
        out.append(
            {
                "calibrated": calibrated,
                "accuracy": round(float((pred == gold).mean()), 4),
                "macro_f1": round(float(f1_score(gold, pred, average="macro")), 4),
                "positive_share": round(float(pred.mean()), 3),
                "label_mass": round(float(sums.sum(1).mean()), 4),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="demo-llm", help="demo-llm, demo-llm-qwen, a folder, a .gguf")
    parser.add_argument("--n", type=int, default=150, help="seeded subset of the validation split [150]")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated prompt names")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/llm-prompts")
    args = parser.parse_args()

    import numpy as np
    import torch

    from cod.data.tasks import load_task
    from cod.modeling.loading import load_teacher
    from cod.modeling.teachers.prompt import CONTENT_FREE
    from cod.sweep.run import _subset

    torch.set_num_threads(args.threads)
    splits = load_task("demo")
    names = list(splits.label_names)
    validation = _subset(splits.validation, args.n)
    texts = [e.text for e in validation]
    gold = np.array([e.label for e in validation])
    base = load_teacher(args.teacher, device="cpu", label_names=names)
    sets = {k: answer_ids(base.tokenizer, names, v) for k, v in LABEL_SETS.items()}
    ids = sorted({i for groups in sets.values() for group in groups for i in group})
    folder = Path(args.out) / hashlib.sha256(base.identity.encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{args.teacher} ({base.identity}); validation subset {len(texts)}; load {os.getloadavg()[0]:.1f}")
    results = []
    for name in args.candidates.split(","):
        teacher = candidate_teacher(base, names, name)
        start = time.perf_counter()
        key = hashlib.sha256(repr((CANDIDATES[name], ids)).encode()).hexdigest()[:12]
        stored = forwards(teacher, texts + list(CONTENT_FREE), ids, folder / f"{name}-{key}.json", args.batch_size)
        seconds = time.perf_counter() - start
        rows, free = [stored[t] for t in texts], [stored[t] for t in CONTENT_FREE]
        for set_name, label_ids in sets.items():
            for row in evaluate(rows, gold, free, ids, label_ids):
                results.append({"prompt": name, "words": set_name, **row})
                print(json.dumps(results[-1]), flush=True)
        print(f"# {name}: {seconds:.0f} s for the forwards not cached", flush=True)
    best = max(results, key=lambda r: (r["accuracy"], r["label_mass"]))
    print("best on validation:", json.dumps(best))
    selection = json.dumps({"teacher": args.teacher, "identity": base.identity, "best": best, "rows": results})
    (folder / "selection.json").write_text(selection)
    (Path(args.out) / f"{args.teacher}.json").write_text(selection)  # read by bench_llm_teacher.py --from-selection
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
