"""Searches on several cores (cod.modeling.lanes): forwards on their own core run beside each other and take turns
with every other forward; the lexical proposer's parallel searches give exactly its sequential answers."""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch

from cod.config import LexicalConfig
from cod.counterfactuals.lexical import LexicalProposer, search_workers
from cod.data.readers import Example
from cod.modeling.lanes import Lanes, on_own_core, own_core
from cod.modeling.loading import load_classifier
from cod.modeling.scoring import Teacher, urgent

TEXTS = [
    "The film was good.",
    "the movie was fun",
    "It is a dull film .",
    "a great and good film",
    "the plot was bad",
    "Brilliant!",
    "the film was good and great and fun",
    "it was not good",
    "a boring , awful mess",
]


@pytest.fixture
def teacher(word_classifier):
    return Teacher(*load_classifier(str(word_classifier)), batch_size=4)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _hold(teacher, inside: threading.Event, release: threading.Event, lane: bool, hurry: bool = False):
    def run():
        lane_block = own_core() if lane else contextlib.nullcontext()
        with lane_block, urgent() if hurry else contextlib.nullcontext(), teacher.turn():
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_own_core_forwards_run_beside_each_other_and_take_turns_with_others(teacher, threads):
    first, second, other = threading.Event(), threading.Event(), threading.Event()
    release, release_other = threading.Event(), threading.Event()
    holders = [_hold(teacher, first, release, lane=True)]
    assert first.wait(10)
    holders.append(_hold(teacher, second, release, lane=True))
    assert second.wait(10)  # a second lane enters while the first holds its turn
    holders.append(_hold(teacher, other, release_other, lane=False))
    assert not other.wait(0.5)  # a forward of all threads waits for the lanes
    late = threading.Event()
    holders.append(_hold(teacher, late, release, lane=True))
    assert not late.wait(0.5)  # and a lane arriving later waits behind it (no starvation)
    release.set()
    assert other.wait(10) and not late.wait(0.5)  # the other runs alone
    release_other.set()
    assert late.wait(10)
    for h in holders:
        h.join(10)


def test_an_urgent_forward_goes_before_waiting_lanes(teacher, threads):
    background, hurry, lane = threading.Event(), threading.Event(), threading.Event()
    release_background, release = threading.Event(), threading.Event()
    holders = [_hold(teacher, background, release_background, lane=False)]
    assert background.wait(10)
    holders.append(_hold(teacher, lane, release, lane=True))
    holders.append(_hold(teacher, hurry, release, lane=False, hurry=True))
    assert not lane.wait(0.5) and not hurry.wait(0.1)
    release_background.set()
    assert hurry.wait(10) and not lane.wait(0.5)  # the person's forward first
    release.set()
    assert lane.wait(10)
    for h in holders:
        h.join(10)


def test_lanes_run_on_one_thread_each_and_restore_the_thread_count(threads):
    torch.set_num_threads(2)
    seen = []
    with Lanes(2) as lanes:
        futures = [lanes.submit(lambda: seen.append((on_own_core(), torch.get_num_threads()))) for _ in range(4)]
        [f.result() for f in futures]
    assert seen == [(True, 1)] * 4 and torch.get_num_threads() == 2 and not on_own_core()
    with Lanes(1) as lanes:  # one worker: the caller's thread, as submitted
        assert lanes.submit(threading.current_thread).result() is threading.current_thread()
    with pytest.raises(ValueError, match="boom"), Lanes(2) as lanes:
        lanes.submit(_boom).result()
    assert torch.get_num_threads() == 2


def _boom():
    raise ValueError("boom")


def test_parallel_searches_give_the_sequential_answers(word_classifier, threads):
    config = LexicalConfig(wordnet=False)
    examples = [Example(t, 1) for t in TEXTS]

    def run(n_threads):
        torch.set_num_threads(n_threads)
        teacher = Teacher(*load_classifier(str(word_classifier)), batch_size=4)
        names = set()
        proposer = LexicalProposer(config, cache_dir=False)
        search = proposer._search

        def recording(*args):  # the threads the searches run on
            names.add(threading.current_thread().name)
            return search(*args)

        proposer._search = recording
        progress = []
        cfs = proposer.propose(examples, teacher, on_progress=lambda d, t: progress.append((d, t)))
        assert progress == [(k, len(TEXTS)) for k in range(1, len(TEXTS) + 1)]
        return cfs, names, search_workers(teacher, len(TEXTS))

    one, names_one, workers_one = run(1)
    two, names_two, workers_two = run(2)
    assert (workers_one, workers_two) == (1, 2) and torch.get_num_threads() == 2
    assert not any(n.startswith("cod-lane") for n in names_one) and any(n.startswith("cod-lane") for n in names_two)
    key = [(c.counterfactual, c.counterfactual_teacher_probs, c.fluency, c.extra.get("alternatives")) for c in one]
    assert key == [
        (c.counterfactual, c.counterfactual_teacher_probs, c.fluency, c.extra.get("alternatives")) for c in two
    ]
    assert sum(c.flipped for c in two) >= len(TEXTS) - 1


def test_a_stop_during_parallel_searches_finishes_what_was_searched(word_classifier, threads):
    torch.set_num_threads(2)
    teacher = Teacher(*load_classifier(str(word_classifier)), batch_size=4)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3  # asked before the batch, then before each search: two start, the rest stop

    cfs = LexicalProposer(LexicalConfig(wordnet=False), cache_dir=False).propose(
        [Example(t, 1) for t in TEXTS], teacher, stop=stop
    )
    stopped = [c for c in cfs if c.extra.get("stopped")]
    assert len(cfs) == len(TEXTS) and len(stopped) == len(TEXTS) - 2
    assert all(c.error.startswith("Stopped") and c.teacher_probs for c in stopped)
    assert all(c.counterfactual and c.fluency is not None for c in cfs if not c.extra.get("stopped"))


def _count_in_new_thread() -> int:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join(10)
    return seen[0]


def test_thread_counts_are_set_back_after_lanes_even_when_they_overlap(threads):
    torch.set_num_threads(2)
    with own_core():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2  # own_core sets its thread's count back
    with Lanes(2) as lanes:
        lanes.submit(torch.get_num_threads).result()
    assert torch.get_num_threads() == 2 and _count_in_new_thread() == 2  # a thread started after the block
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    counts = {}

    def block(name, inside, wait_for, after=None):
        counts[name + " began"] = torch.get_num_threads()
        with Lanes(2) as lanes:
            lanes.submit(torch.get_num_threads).result()
            inside.set()
            wait_for.wait(10)
        if after is not None:
            after.set()
        counts[name] = torch.get_num_threads()

    a = threading.Thread(target=block, args=("a", a_in, b_in, a_out))
    a.start()
    assert a_in.wait(10)
    b = threading.Thread(target=block, args=("b", b_in, a_out))  # starts while A runs: B ends last
    b.start()
    a.join(10)
    b.join(10)
    assert counts["b began"] == 1  # started while A's workers run: the default was 1 (torch's own behaviour)
    assert (counts["a"], counts["b"]) == (2, 2) and _count_in_new_thread() == 2 and torch.get_num_threads() == 2


def test_searches_run_one_at_a_time_off_the_main_thread(teacher, threads):
    torch.set_num_threads(2)
    assert search_workers(teacher, 5) == 2 and search_workers(teacher, 1) == 1
    seen = []
    thread = threading.Thread(target=lambda: seen.append(search_workers(teacher, 5)))  # as the app's workers call
    thread.start()
    thread.join(10)
    assert seen == [1]
