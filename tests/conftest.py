import os

# Tests never touch the network: the Hub is off, every model is built here or packaged.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Fuzz tests (tests/test_data_fuzz.py): `ci` keeps them to a fixed few seconds in the suite;
# `pytest tests/test_data_fuzz.py --hypothesis-profile=long` explores far more cases.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("long", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from tests.tiny import make_tiny_classifier, make_word_classifier  # noqa: E402


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory):
    """A saved tiny binary BERT classifier (labels negative/positive)."""
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny-binary"))


@pytest.fixture(scope="session")
def tiny_classifier_3way(tmp_path_factory):
    """A saved tiny 3-class BERT classifier (labels sports/politics/tech)."""
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny-3way"), label_names=("sports", "politics", "tech"))


@pytest.fixture(scope="session")
def word_classifier(tmp_path_factory):
    """A saved tiny binary classifier with hand-set word weights (`tests.tiny.make_word_classifier`)."""
    return make_word_classifier(tmp_path_factory.mktemp("word-binary"))


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """A second tiny classifier with another seed and size, to act as a student."""
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny-student"), hidden=16, layers=1, seed=1)


@pytest.fixture
def cod_home(tmp_path, monkeypatch):
    """An empty `$COD_HOME` for tests that write caches or a store (the demo models stay where they are)."""
    from cod.paths import models_dir

    built = models_dir()  # the real one, where the demo teacher is built once per machine
    home = tmp_path / "cod_home"
    home.mkdir()
    (home / "models").symlink_to(built, target_is_directory=True)
    monkeypatch.setenv("COD_HOME", str(home))
    return home


def pytest_collection_modifyitems(config, items):
    """`refit` tests (a from-scratch demo-teacher fit, 10 to 20 minutes) run only with COD_RUN_REFIT=1
    (`make test-refit`)."""
    if os.environ.get("COD_RUN_REFIT") == "1":
        return
    skip = pytest.mark.skip(
        reason="refits the demo teacher (10-20 min on 2 cores): run `make test-refit` (COD_RUN_REFIT=1)"
    )
    for item in items:
        if "refit" in item.keywords:
            item.add_marker(skip)
