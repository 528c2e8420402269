"""Live previews at bfloat16 (cod.modeling.precision): chosen only where it applies, close to the teacher's float32
answers (tiny and demo models), never written into the teacher's own cache, and a near-tie is answered by the teacher
itself, so a preview's label is the label that would be stored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cod.errors import ConfigError
from cod.modeling.live import LiveBatcher
from cod.modeling.loading import load_classifier
from cod.modeling.precision import (
    CANONICAL,
    PROBES,
    PreviewScorer,
    cpu_has_fast_bfloat16,
    live_precision,
    traced_logits,
)
from cod.modeling.scoring import Teacher, urgent

CLEAR = ["a good , lovely film", "a dull , boring film", "the best fun", "the worst mess", "a brilliant plot"]
TIE = "a good but bad film"  # one positive and one negative word: the word classifier's probabilities are 0.5 / 0.5


@pytest.fixture
def teacher(word_classifier):
    return Teacher(*load_classifier(str(word_classifier)), batch_size=4)


def test_the_setting_is_checked_and_teacher_keeps_previews_canonical(teacher, monkeypatch):
    monkeypatch.setenv("COD_LIVE_PRECISION", "int4")
    with pytest.raises(ConfigError, match="COD_LIVE_PRECISION='int4'"):
        live_precision(teacher)
    monkeypatch.setenv("COD_LIVE_PRECISION", "teacher")
    assert live_precision(teacher) == CANONICAL and LiveBatcher(teacher).precision == CANONICAL
    monkeypatch.setenv("COD_LIVE_PRECISION", "bfloat16")
    assert live_precision(teacher) == "bfloat16"
    monkeypatch.setenv("COD_LIVE_RECHECK_MARGIN", "2")
    with pytest.raises(ConfigError, match="COD_LIVE_RECHECK_MARGIN='2'"):
        PreviewScorer(teacher)


def test_auto_picks_bfloat16_only_for_a_float32_classifier_on_bfloat16_hardware(teacher, monkeypatch):
    monkeypatch.delenv("COD_LIVE_PRECISION", raising=False)
    assert live_precision(teacher) == ("bfloat16" if cpu_has_fast_bfloat16() else CANONICAL)
    monkeypatch.setenv("COD_LIVE_PRECISION", "bfloat16")
    teacher.model.to(torch.bfloat16)  # a teacher loaded in bfloat16 already: its previews are its own answers
    assert live_precision(teacher) == CANONICAL

    class LLMTeacher:
        kind = "causal-lm"
        model = teacher.model

    assert live_precision(LLMTeacher()) == CANONICAL


def test_previews_are_close_to_the_teacher_and_never_enter_its_cache(teacher):
    preview = PreviewScorer(teacher)
    probs = preview.predict_proba(CLEAR)  # (5, 2)
    assert teacher.forward_passes == 0 and preview.rechecked == 0
    assert all(teacher.cached_proba(t) is None for t in CLEAR)  # the teacher's cache holds only its own answers
    assert next(preview.model.parameters()).dtype == torch.bfloat16
    assert next(teacher.model.parameters()).dtype == torch.float32  # the teacher itself is untouched
    canonical = teacher.predict_proba(CLEAR)
    assert (probs.argmax(1) == canonical.argmax(1)).all() and np.abs(probs - canonical).max() < 0.02
    np.testing.assert_array_equal(preview.cached_proba(CLEAR[0]), teacher.cached_proba(CLEAR[0]))


def test_a_text_the_teacher_scored_before_is_answered_canonically(teacher):
    canonical = teacher.predict_proba(CLEAR[:2])
    preview = PreviewScorer(teacher)
    np.testing.assert_array_equal(preview.predict_proba(CLEAR[:2]), canonical)
    assert teacher.forward_passes == 2


def test_a_near_tie_is_answered_by_the_teacher_itself(teacher):
    preview = PreviewScorer(teacher, margin=0.1)
    probs = preview.predict_proba([CLEAR[0], TIE])
    assert preview.rechecked == 1 and teacher.forward_passes == 1  # only the tie ran in float32
    np.testing.assert_array_equal(probs[1], teacher.cached_proba(TIE))
    assert teacher.cached_proba(CLEAR[0]) is None
    everything = PreviewScorer(teacher, margin=1.0)  # every preview rechecked: exactly the teacher's answers
    np.testing.assert_array_equal(everything.predict_proba(CLEAR), teacher.predict_proba(CLEAR))


def test_the_live_batcher_previews_in_bfloat16_and_says_so(teacher, monkeypatch):
    monkeypatch.setenv("COD_LIVE_PRECISION", "bfloat16")
    batcher = LiveBatcher(teacher, window_s=0.0)
    probs = batcher.predict_proba(CLEAR[1])
    assert batcher.precision == "bfloat16" and teacher.forward_passes == 0
    assert probs.argmax() == 0 and batcher.predict_proba(CLEAR[1]) is not None and batcher.batches == 1


@pytest.mark.slow
def test_the_demo_teachers_bfloat16_previews_agree_with_it_on_demo_test_texts():
    from cod.data.tasks import load_task
    from cod.modeling.demo import demo_teacher_path

    teacher = Teacher(*load_classifier(str(demo_teacher_path()), trusted=True), batch_size=16)
    texts = [e.text for e in load_task("demo").test[:48]]
    preview = PreviewScorer(teacher, margin=0.0)  # no recheck: the bfloat16 answers themselves
    probs = preview.predict_proba(texts)
    assert teacher.forward_passes == 0
    canonical = teacher.predict_proba(texts)
    # Measured on all 1,000 test texts by bench/bench_live_precision.py; the bound leaves room for other CPUs.
    assert (probs.argmax(1) == canonical.argmax(1)).all() and np.abs(probs - canonical).max() < 0.05


def test_the_traced_graph_gives_the_bfloat16_copys_own_logits_at_any_batch_size(teacher):
    preview = PreviewScorer(teacher)
    assert preview.graph is not None
    texts = CLEAR + [TIE, "a good film " * 6, "bad"]
    traced = preview._forward(texts)  # (8, 2), batches of 4 sorted by length
    with torch.inference_mode():
        eager = preview.model(**teacher.tokenizer(texts, padding=True, return_tensors="pt")).logits.float().numpy()
    np.testing.assert_allclose(traced, eager, atol=2e-2)  # bfloat16 rounding differs with the padding only


def test_a_model_the_tracer_cannot_follow_runs_eagerly(teacher):
    class SizeDependent(torch.nn.Module):
        """Logits that depend on the batch size through Python: a trace would bake in the size it saw."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **enc):
            out = self.inner(**enc)
            out.logits = out.logits * (2.0 if enc["input_ids"].shape[0] == 2 else 1.0)
            return out

    assert traced_logits(SizeDependent(teacher.model).eval(), teacher.tokenizer, PROBES) is None
    assert traced_logits(teacher.model, teacher.tokenizer, PROBES) is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_a_one_thread_live_preview_runs_beside_a_teacher_forward_and_otherwise_takes_turns(teacher, threads):
    import threading

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    preview = PreviewScorer(teacher)
    held, release = threading.Event(), threading.Event()

    def hold_the_teacher():
        with teacher.turn():  # as a background batch of the teacher's own would
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_teacher, daemon=True)
    holder.start()
    held.wait(30)
    done = threading.Event()

    def live_preview():
        with urgent():  # as the live batcher calls it
            preview._forward(["a lovely film"])
        done.set()

    worker = threading.Thread(target=live_preview, daemon=True)
    try:
        worker.start()
        assert done.wait(10 if threads == 1 else 1) == (threads == 1)
    finally:
        release.set()
        worker.join(30)
        holder.join(30)
        torch.set_num_threads(before)
    assert done.is_set()


def test_a_background_preview_takes_turns_with_the_teacher_even_with_one_thread(teacher):
    import threading

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    preview = PreviewScorer(teacher)  # as the offline search's bfloat16 screen uses it: not urgent
    done = threading.Event()
    worker = threading.Thread(target=lambda: (preview._forward(["a lovely film"]), done.set()), daemon=True)
    try:
        with teacher.turn():
            worker.start()
            assert not done.wait(1)
        assert done.wait(30)
    finally:
        torch.set_num_threads(before)
