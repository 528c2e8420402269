"""Export and import of a project's counterfactual pairs with their provenance.

One line (or row) per pair: the pair as it is now (`Counterfactual.to_record` fields, labels by name), then its
curation status, source, the text as proposed, its full history and the project's settings. JSONL keeps nested
values as JSON; CSV flattens them into JSON strings; a folder is a `datasets` Dataset (`save_to_disk`, labels as
ClassLabel) plus `cod_project.json` holding the project and its whole example pool. Importing any of the three into
a new project reproduces the pairs, statuses, texts and histories (a JSONL/CSV export carries only the examples the
pairs came from; a folder carries them all). JSONL lines written by `cod propose` (no status) import as proposals.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cod.counterfactuals.base import Counterfactual
from cod.csvsafe import restore_cell, write_csv
from cod.data.readers import Example
from cod.errors import DataError, StoreError
from cod.io import atomic_path, parse_jsonl, write_jsonl
from cod.store.curation import CURATED, STATUSES, new_action, source_of
from cod.store.runs import _dumps, _now

if TYPE_CHECKING:  # pragma: no cover
    from cod.store import Project, Store

FORMAT = "cod-pairs/1"
PROJECT_FILE = "cod_project.json"
REQUIRED = ("text", "label", "counterfactual", "target_label")
# Fields that hold lists or dicts: JSON strings in CSV and datasets columns.
NESTED = (
    "teacher_probs",
    "counterfactual_teacher_probs",
    "proposed_counterfactual_teacher_probs",
    "edits",
    "proposed_edits",
    "extra",
    "history",
    "example",
    "project",
)
FIRST_COLUMNS = (
    "text",
    "label",
    "counterfactual",
    "target_label",
    "teacher_label",
    "flipped",
    "status",
    "source",
    "edited",
    "proposed_counterfactual",
    "proposer",
    "model",
    "prompt_version",
    "words_changed",
    "edit_distance",
)


# ---- export -------------------------------------------------------------------------------------------------------


def pair_records(store: Store, name: str, which: str = "all") -> list[dict[str, Any]]:
    """The project's pairs as export records (nested values as Python objects), in proposal order."""
    if which not in ("all", "curated"):
        raise StoreError(f"which={which!r}: export 'all' pairs (with their status) or only the 'curated' ones.")
    project = store.project(name)
    records = store.counterfactuals(name, CURATED if which == "curated" else None)
    history: dict[int, list[dict[str, Any]]] = {}
    for h in store.history(project=name):
        history.setdefault(h.counterfactual_id, []).append(
            {"kind": h.kind, "source": h.source, "at": h.at, "before": h.before, "after": h.after}
        )
    with store._read() as c:
        examples = {
            r["id"]: {"split": r["split"], "position": r["position"], "text_pair": r["text_pair"]}
            for r in c.execute(
                "SELECT id, split, position, text_pair FROM examples WHERE project_id = ?", (project.id,)
            )
        }
    out = []
    for rec in records:
        line = rec.counterfactual.to_record(project.label_names)
        line.update(
            {
                "status": rec.status,
                "source": rec.source,
                "edited": rec.edited,
                "proposed_counterfactual": rec.proposed_text,
                "proposed_counterfactual_teacher_probs": rec.record.get("counterfactual_teacher_probs", {}),
                "proposed_edits": rec.record.get("edits", []),
                "created_at": rec.created_at,
                "updated_at": rec.updated_at,
                "history": history.get(rec.id, []),
                "example": examples.get(rec.example_id),
                "project": project.meta(),
                "format": FORMAT,
            }
        )
        out.append(line)
    return out


def export_project(store: Store, name: str, out: str | Path, which: str = "all") -> Path:
    """Write the pairs to `out`: .jsonl (one JSON object a line), .csv, or a folder (datasets save_to_disk)."""
    out = Path(out).expanduser()
    kind = _kind(out, for_writing=True)
    records = pair_records(store, name, which)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":  # atomic: a crash mid-export never leaves a truncated file under the real name
        write_jsonl(out, records)
    elif kind == "csv":
        import pandas as pd

        rows = [_flat(r) for r in records]
        columns = list(FIRST_COLUMNS) + sorted({k for r in rows for k in r} - set(FIRST_COLUMNS))
        with atomic_path(out) as tmp:
            write_csv(pd.DataFrame(rows, columns=columns), tmp)  # texts starting with = + - @ never run as formulas
    else:
        import datasets

        project = store.project(name)
        quiet = datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()  # the CLI prints its own line; the app shows its own progress
        try:
            to_dataset(store, name, which, records=records).save_to_disk(str(out))
        finally:
            if not quiet:
                datasets.enable_progress_bars()
        pool = [
            {
                "split": s,
                "position": i,
                "text": ex.text,
                "label": project.label_names[ex.label],
                "text_pair": ex.text_pair,
            }
            for s, i, ex in _example_pool(store, project)
        ]
        (out / PROJECT_FILE).write_text(
            json.dumps({"format": FORMAT, "project": project.meta(), "examples": pool}, ensure_ascii=False),
            encoding="utf-8",
        )
    return out


def to_dataset(store: Store, name: str, which: str = "all", records: list[dict[str, Any]] | None = None):
    """The pairs as a `datasets.Dataset`: labels as ClassLabel, probabilities as float lists, provenance as JSON."""
    from datasets import ClassLabel, Dataset, Features, List, Value

    project = store.project(name)
    labels = project.label_names
    records = pair_records(store, name, which) if records is None else records
    rows = []
    for r in records:
        row = _flat(r)
        row.pop("project")  # the same for every row: it goes in cod_project.json / the dataset card
        row["label"], row["target_label"] = labels.index(r["label"]), labels.index(r["target_label"])
        row["teacher_label"] = r["teacher_label"] or ""
        for key in ("teacher_probs", "counterfactual_teacher_probs"):
            row[key] = [float(r[key].get(n, math.nan)) for n in labels] if r[key] else []
        rows.append(row)
    string_columns = [
        c
        for c in (set(rows[0]) if rows else set(FIRST_COLUMNS) | set(NESTED) - {"project"})
        if c
        not in {
            "label",
            "target_label",
            "flipped",
            "edited",
            "words_changed",
            "edit_distance",
            "teacher_probs",
            "counterfactual_teacher_probs",
            "attempts",
            "tokens",
            "latency_s",
        }
    ]
    features = Features(
        {
            **{c: Value("string") for c in sorted(string_columns)},
            "label": ClassLabel(names=labels),
            "target_label": ClassLabel(names=labels),
            "flipped": Value("bool"),
            "edited": Value("bool"),
            "words_changed": Value("int64"),
            "edit_distance": Value("float64"),
            "attempts": Value("int64"),
            "tokens": Value("int64"),
            "latency_s": Value("float64"),
            "teacher_probs": List(Value("float64")),
            "counterfactual_teacher_probs": List(Value("float64")),
        }
    )
    return Dataset.from_list(rows, features=features)


def dataset_card(store: Store, name: str, repo_id: str, which: str = "all") -> str:
    """A dataset card (markdown) describing the project's pairs: what they are, how they were made, the columns."""
    project = store.project(name)
    records = store.counterfactuals(name)
    counts = store.summary(name)["counterfactuals"]
    proposers = sorted({r.source for r in records})
    n_pairs = len(records) if which == "all" else sum(counts[s] for s in ("accepted", "edited"))
    return f"""# {repo_id}

Counterfactual pairs curated with CoD Studio for few-shot knowledge distillation with counterfactual explanations
(Hamman et al., NeurIPS 2025): each row is an original text and a minimal edit of it that flips the teacher's \
prediction.

- Project: `{project.name}` (task: {project.task or 'custom'}; data: {project.data_source or 'not recorded'})
- Labels: {', '.join(project.label_names)}
- Teacher: `{project.teacher}`; student: `{project.student}`; k = {project.k}, seed = {project.seed}
- Pairs: {n_pairs} ({which}); by status: {counts}
- Proposed by: {', '.join(proposers) or 'none'}; a person accepted, rejected or edited each pair where `status` \
says so.

## Columns

- `text`, `label`: the original example and its gold label; `counterfactual`, `target_label`: the edit and the \
class it aims for.
- `teacher_probs`, `counterfactual_teacher_probs`: the teacher's probabilities (in label order) on each text; \
`flipped`: the
  teacher's argmax on the counterfactual is the target. An edited text that was not re-scored has empty probabilities.
- `status`: proposed, accepted, rejected or edited; `source`: the proposer or `person`; `proposed_counterfactual`: \
the text as proposed.
- `history`: JSON list of every change (kind, source, time, state before and after); `edits`: word-level edits.

Train on the rows whose status is `accepted` or `edited`.
"""


def push_to_hub(
    store: Store, name: str, repo_id: str, token: str | None = None, private: bool = True, which: str = "all"
) -> str:
    """Upload the pairs as a Hub dataset with a dataset card; returns its URL. Needs a network and a token."""
    if str(os.environ.get("HF_HUB_OFFLINE", "")).lower() in ("1", "true", "yes", "on"):
        raise StoreError(
            f"Cannot push {repo_id!r}: HF_HUB_OFFLINE is set, so the Hub is unreachable. Unset it, log in "
            "with `hf auth login` (or pass a token), and try again; or export to a folder instead."
        )
    ds = to_dataset(store, name, which)
    try:
        from huggingface_hub import DatasetCard

        ds.push_to_hub(repo_id, private=private, token=token)
        card = DatasetCard.load(
            repo_id, repo_type="dataset", token=token
        )  # keeps the dataset_info YAML push_to_hub wrote
        card.text = dataset_card(store, name, repo_id, which)
        card.data.task_categories = ["text-classification"]
        card.data.tags = sorted(
            set(card.data.tags or []) | {"counterfactuals", "knowledge-distillation", "cod-studio"}
        )
        card.push_to_hub(repo_id, token=token, repo_type="dataset", commit_message="Dataset card from CoD Studio")
    except Exception as err:  # network, auth and permission errors all come here
        raise StoreError(
            f"Could not push project {name!r} to the Hub as {repo_id!r} ({type(err).__name__}: {err}): check the "
            "connection, log in with `hf auth login` or pass a token with write access."
        ) from err
    return f"https://huggingface.co/datasets/{repo_id}"


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v, ensure_ascii=False) if k in NESTED else v for k, v in record.items()}


def _example_pool(store: Store, project: Project) -> list[tuple[str, int, Example]]:
    with store._read() as c:
        rows = c.execute(
            "SELECT split, position, text, text_pair, label FROM examples "
            "WHERE project_id = ? ORDER BY split, position",
            (project.id,),
        ).fetchall()
    return [(r["split"], r["position"], Example(r["text"], r["label"], r["text_pair"])) for r in rows]


def _kind(path: Path, for_writing: bool = False) -> str:
    if path.is_dir() or (for_writing and not path.suffix):
        return "dir"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise DataError(
        f"{path} is neither .jsonl, .csv nor a folder: export/import pairs as FILE.jsonl, FILE.csv or a folder."
    )


# ---- import -------------------------------------------------------------------------------------------------------


def read_records(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, dict[str, Any] | None]:
    """Read an export: (pair records, the example pool when the export has one, project meta from a folder)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"No file or folder at {path}: check the path.")
    kind = _kind(path)
    if kind == "jsonl":
        return _read_jsonl(path), None, None
    if kind == "csv":
        return _read_csv(path), None, None
    meta_file = path / PROJECT_FILE
    if not meta_file.exists():
        raise DataError(
            f"{path} is a folder without {PROJECT_FILE}: it is not a CoD export "
            "(export one with `python -m cod project export --out DIR`)."
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
    except (ValueError, OSError, FileNotFoundError) as err:
        raise DataError(f"{path} could not be read as a CoD export folder ({err}): export it again.") from err
    labels = meta["project"]["label_names"]
    records = []
    for i, row in enumerate(ds):
        r = _parse_flat(dict(row), path, i + 1)
        r["label"], r["target_label"] = labels[r["label"]], labels[r["target_label"]]
        for key in ("teacher_probs", "counterfactual_teacher_probs"):
            r[key] = dict(zip(labels, r[key])) if r.get(key) else {}
        r["project"] = meta["project"]
        records.append(r)
    return records, meta.get("examples"), meta["project"]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): is it a binary file? "
            "Import a .jsonl or .csv export."
        ) from err
    rows = parse_jsonl(text, str(path), fix="A CoD export has one pair (a JSON object) a line")
    if not rows:
        raise DataError(f"{path} holds no pairs: export a project with counterfactuals first.")
    return [_check_record(value, path, n) for n, value in rows]


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)  # texts such as "NA" stay texts
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text ({err.reason}): is it a binary file? Import a .jsonl or .csv export."
        ) from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(
            f"{path} could not be read as CSV ({err}): import a .csv written by `python -m cod project export`."
        ) from err
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(
            f"{path} has no column(s) {missing} (it has {list(df.columns)[:12]}): it is not a CoD pairs export."
        )
    if df.empty:
        raise DataError(f"{path} holds no pairs: export a project with counterfactuals first.")
    rows = [{k: restore_cell(v) for k, v in row.items()} for row in df.to_dict("records")]  # undo export's apostrophes
    return [_check_record(_parse_flat(row, path, i + 2), path, i + 2) for i, row in enumerate(rows)]


def _parse_flat(row: dict[str, Any], path: Path, n: int) -> dict[str, Any]:
    """A CSV / dataset row back to a record: JSON strings parsed, numbers converted, empty cells dropped."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in NESTED and isinstance(value, str):
            if value == "":
                continue
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"Row {n} of {path}: column {key!r} is not valid JSON ({value[:60]!r}): "
                    "the file was altered; export it again."
                ) from err
        out[key] = value
    for key, cast in (("attempts", int), ("tokens", int), ("latency_s", float)):
        if out.get(key) in ("", None):
            out.pop(key, None)
        elif key in out:
            try:
                out[key] = cast(float(out[key])) if cast is int else cast(out[key])
            except (TypeError, ValueError) as err:
                raise DataError(f"Row {n} of {path}: {key} {out[key]!r} is not a number.") from err
    return out


def _check_record(record: dict[str, Any], path: Path, n: int) -> dict[str, Any]:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise DataError(
            f"Line {n} of {path} has no {missing} (it has {sorted(record)[:10]}): it is not a CoD pairs export "
            f"(each line needs {list(REQUIRED)})."
        )
    status = record.get("status", "proposed")
    if status not in STATUSES:
        raise DataError(f"Line {n} of {path} has status {status!r}, not one of {list(STATUSES)}.")
    return record


def import_project(store: Store, path: str | Path, name: str) -> Project:
    """Create project `name` from an export in one transaction; the name must be new."""
    path = Path(path).expanduser()
    records, pool, folder_meta = read_records(path)
    meta = _project_meta(records, path, folder_meta)
    labels = meta["label_names"]
    proposals = []
    for n, r in enumerate(records, 1):
        try:
            proposals.append(_proposal(r, labels))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"Pair {n} of {path} cannot be read ({type(err).__name__}: {err}): "
                "the file was altered; export it again."
            ) from err
    try:
        with store._write() as c:  # the project and its pairs appear together or not at all
            project_id = store._insert_project(
                c,
                name,
                labels,
                task=meta.get("task", ""),
                data_source=meta.get("data_source", "") or str(path),
                columns=meta.get("columns") or {},
                teacher=meta.get("teacher") or "demo",
                student=meta.get("student") or "demo",
                k=int(meta.get("k") or 16),
                seed=int(meta.get("seed") or 0),
                settings=meta.get("settings") or {},
            )
            _insert_pairs(c, project_id, labels, records, proposals, pool)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{path} has a malformed history, example or probability field ({type(err).__name__}: {err}): "
            "the file was altered; export it again. Nothing was imported."
        ) from err
    return store.project(name)


def _project_meta(records: list[dict[str, Any]], path: Path, folder_meta: dict[str, Any] | None) -> dict[str, Any]:
    if folder_meta:
        return folder_meta
    metas = [r.get("project") for r in records]
    if metas[0]:
        if any((m or {}).get("label_names") != metas[0].get("label_names") for m in metas):
            raise DataError(
                f"{path} mixes pairs from projects with different label sets: import each project's export separately."
            )
        return dict(metas[0])
    probs = records[0].get("teacher_probs")
    if isinstance(probs, dict) and len(probs) >= 2:
        return {"label_names": list(probs)}  # a plain `cod propose` file: labels in the teacher's order
    raise DataError(
        f"{path} does not say its label names (no 'project' field and no teacher_probs by label): import a CoD export."
    )


def _proposal(r: dict[str, Any], labels: list[str]) -> Counterfactual:
    """The counterfactual as first proposed (before any person's edit)."""
    fields = dict(r)
    if "proposed_counterfactual" in r:
        fields["counterfactual"] = r["proposed_counterfactual"]
        fields["counterfactual_teacher_probs"] = r.get("proposed_counterfactual_teacher_probs") or {}
        fields["edits"] = r.get("proposed_edits") or []
    for key in ("teacher_probs", "counterfactual_teacher_probs"):
        if not fields.get(key):
            fields[key] = []
    return Counterfactual.from_record(fields, labels)


def _insert_pairs(
    c: Any,
    project_id: int,
    labels: list[str],
    records: list[dict[str, Any]],
    proposals: list[Counterfactual],
    pool: list[dict[str, Any]] | None,
) -> None:
    by_key: dict[tuple[str, int], int] = {}

    def add_example(split: str, position: int | None, text: str, label: str | int, text_pair: str | None) -> int:
        label_id = labels.index(label) if isinstance(label, str) else int(label)
        if position is None:
            position = c.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM examples WHERE project_id = ? AND split = ?",
                (project_id, split),
            ).fetchone()[0]
        existing = by_key.get((split, position))
        if existing is not None:
            return existing
        cur = c.execute(
            "INSERT INTO examples (project_id, split, position, text, text_pair, label) VALUES (?, ?, ?, ?, ?, ?)",
            (project_id, split, position, text, text_pair, label_id),
        )
        by_key[(split, position)] = cur.lastrowid
        return cur.lastrowid

    for e in pool or []:
        add_example(e["split"], int(e["position"]), e["text"], e["label"], e.get("text_pair"))
    now = _now()
    action = new_action(c, project_id, "import", "import", now)
    for r, cf in zip(records, proposals):
        ex = r.get("example")
        if isinstance(ex, dict) and "split" in ex:
            ex_id = add_example(ex["split"], int(ex["position"]), cf.text, cf.label, ex.get("text_pair"))
        else:
            row = c.execute(
                "SELECT id FROM examples WHERE project_id = ? AND text = ? LIMIT 1", (project_id, cf.text)
            ).fetchone()
            ex_id = row[0] if row else add_example("train", None, cf.text, cf.label, None)
        current = r["counterfactual"] if "proposed_counterfactual" in r else cf.counterfactual
        probs = r.get("counterfactual_teacher_probs")
        current_probs = [float(probs[n]) for n in labels] if isinstance(probs, dict) and probs else None
        status, source = r.get("status", "proposed"), r.get("source") or source_of(cf)
        cur = c.execute(
            "INSERT INTO counterfactuals (project_id, example_id, record, status, current_text, current_probs, "
            "source, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                project_id,
                ex_id,
                _dumps(cf.to_record(labels)),
                status,
                current,
                _dumps(current_probs) if current_probs else None,
                source,
                r.get("created_at") or now,
                r.get("updated_at") or now,
            ),
        )
        entries = r.get("history") or [
            {
                "kind": "import",
                "source": source,
                "at": now,
                "before": None,
                "after": {"status": status, "text": current, "probs": current_probs},
            }
        ]
        for h in entries:
            c.execute(
                "INSERT INTO history (action_id, counterfactual_id, kind, source, before, after, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    action,
                    cur.lastrowid,
                    h["kind"],
                    h["source"],
                    None if h.get("before") is None else _dumps(h["before"]),
                    None if h.get("after") is None else _dumps(h["after"]),
                    h["at"],
                ),
            )
