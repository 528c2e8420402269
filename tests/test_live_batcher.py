"""Live predictions under concurrency (cod.modeling.live): many callers' texts share forwards and each caller gets
its own text's probabilities; errors reach every caller of the batch; a live prediction goes before background
forwards of the same teacher and a text scored before never waits for one."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cod.modeling.live import LiveBatcher
from cod.modeling.loading import clear_teacher_cache, load_classifier
from cod.modeling.scoring import Teacher

WORDS = ["good", "bad", "film", "movie", "great", "awful", "plot", "cast", "fun", "dull", "a", "the", "very"]


@pytest.fixture
def teacher(tiny_classifier, monkeypatch):
    monkeypatch.setenv("COD_LIVE_PRECISION", "teacher")  # batching itself; bfloat16 previews: test_live_precision.py
    clear_teacher_cache()
    model, tokenizer = load_classifier(str(tiny_classifier))
    return Teacher(model, tokenizer, batch_size=2)


def reference(tiny_classifier, texts):
    """Each text scored alone by a teacher of its own: what every caller must get."""
    model, tokenizer = load_classifier(str(tiny_classifier))
    alone = Teacher(model, tokenizer)
    return {t: alone.predict_proba([t])[0] for t in texts}


def concurrently(fn, args: list) -> list:
    """fn(arg) for every arg, all threads released at once; results in the order of args."""
    start = threading.Barrier(len(args))
    out: list = [None] * len(args)

    def call(i):
        start.wait()
        try:
            out[i] = fn(args[i])
        except Exception as err:  # noqa: BLE001 - returned for the assertions
            out[i] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return out


def test_concurrent_callers_share_forwards_and_each_gets_their_own_texts_probabilities(teacher, tiny_classifier):
    texts = [f"{WORDS[i % 13]} {WORDS[(3 * i) % 13]} {WORDS[(7 * i + 1) % 13]} film {i}" for i in range(24)]
    batcher = LiveBatcher(teacher, window_s=0.2)  # generous: every thread released by the barrier joins in time
    got = concurrently(batcher.predict_proba, texts)
    expected = reference(tiny_classifier, texts)
    for text, probs in zip(texts, got):
        np.testing.assert_allclose(probs, expected[text], atol=1e-5)
    assert len({tuple(np.round(p, 6)) for p in got}) > 1  # the texts differ, so must their answers
    assert batcher.batches <= 4 and teacher.forward_passes == len(texts)  # a few forwards, each text once


def test_a_failing_batch_reaches_every_caller_and_the_next_batch_works(tiny_classifier):
    class Flaky:
        label_names = ["negative", "positive"]

        def __init__(self):
            self.calls = 0

        def predict_proba(self, texts):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("the model ran out of memory")
            return np.array([[0.25, 0.75] if "good" in t else [0.9, 0.1] for t in texts])

    batcher = LiveBatcher(Flaky(), window_s=0.2)
    got = concurrently(batcher.predict_proba, ["good", "bad", "good film"])
    assert all(isinstance(g, RuntimeError) for g in got)
    np.testing.assert_allclose(batcher.predict_proba("a good one"), [0.25, 0.75])
    np.testing.assert_allclose(batcher.predict_proba("a bad one"), [0.9, 0.1])


def test_a_live_prediction_goes_before_a_long_background_request(teacher):
    background = [f"{WORDS[i % 13]} {WORDS[(5 * i) % 13]} background text {i}" for i in range(1500)]
    teacher.predict_proba(["a good film"])  # scored before: answered from the cache
    done = threading.Event()
    worker = threading.Thread(target=lambda: (teacher.predict_proba(background), done.set()), daemon=True)
    worker.start()
    deadline = time.time() + 60
    while teacher.forward_passes < 3:  # the background request holds the model batch after batch
        assert time.time() < deadline and not done.is_set()
        time.sleep(0.001)
    batcher = LiveBatcher(teacher, window_s=0.0)
    hit = batcher.predict_proba("a good film")
    fresh = batcher.predict_proba("a very dull plot")  # a forward of its own, between two background batches
    assert not done.is_set(), "the live prediction waited for the whole background request"
    assert hit.shape == fresh.shape == (2,)
    worker.join(timeout=300)
    assert done.is_set() and teacher.forward_passes == len(background) + 2
