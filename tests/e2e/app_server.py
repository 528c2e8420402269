"""Start the real app on 127.0.0.1 (a free port) inside the test process, with tiny models and a temp store."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

from tests.tiny import make_tiny_classifier, make_word_classifier

EXAMPLE = Path(__file__).resolve().parents[2] / "assets" / "example_reviews.csv"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_services(root: Path):
    """Services over a word-weight teacher (flips follow sentiment words), a tiny student and a store under `root`."""
    from components.services import Services

    teacher = make_word_classifier(root / "teacher")
    student = make_tiny_classifier(root / "student", hidden=16, layers=1, seed=1)
    return Services(teacher=str(teacher), student=str(student), store_path=root / "cod.db", artifacts=root / "art")


@contextmanager
def running_app(services):
    """The app served on a free loopback port; yields its URL and closes it afterwards."""
    from app import build_app, launch_options

    blocks = build_app(services)
    blocks.queue(default_concurrency_limit=4)
    port = free_port()
    blocks.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(blocks)
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()


def curated_project(services, name: str, edit: bool = False) -> str:
    """A project of the example CSV (k=8, seed 0) made through the library, its counterfactuals proposed offline and
    every flipped one accepted (the first one edited by hand with `edit`), so a browser test can open it by name."""
    from cod.counterfactuals import propose
    from cod.experiment import file_source, save_project, split

    source = file_source(EXAMPLE)
    splits = split(source, 8, 0)
    store = services.store()
    save_project(store, name, source, splits, teacher=services.default_teacher, student=services.default_student)
    teacher = services.teacher(services.default_teacher)
    records = store.add_counterfactuals(
        name, propose(splits.real_half, teacher, proposer="lexical", few_shot=splits.few_shot)
    )
    if edit:
        store.edit(records[0].id, records[0].text + " !", teacher.predict_proba([records[0].text + " !"])[0].tolist())
    flipped = [r.id for r in store.counterfactuals(name) if r.status == "proposed" and r.counterfactual.flipped]
    if flipped:
        store.set_status(flipped, "accepted")
    return name
