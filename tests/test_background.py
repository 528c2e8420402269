"""Long calls in a low-priority child process (cod.background): the child runs at nice 19 with one torch thread, its
events arrive in order while it runs, its result or its error comes back, a stop request reaches it, and a child
that dies is reported, all with real processes."""

from __future__ import annotations

import os
import time

import pytest

from cod.background import run_in_child
from cod.errors import CodError, DistillError


def report(n, on_event=None, stop=None, word="step"):
    """Runs in the child: its pid, niceness and torch threads as events, then a result."""
    import torch

    for i in range(n):
        on_event({"kind": word, "i": i})
    return {"pid": os.getpid(), "nice": os.getpriority(os.PRIO_PROCESS, 0), "threads": torch.get_num_threads()}


def fail(on_event=None, stop=None):
    on_event({"kind": "started"})
    raise DistillError("The student 'x' has 3 labels but the data has 2: choose a matching student.")


def until_stopped(on_event=None, stop=None):
    steps = 0
    while not stop():
        on_event({"kind": "step", "i": steps})
        steps += 1
        time.sleep(0.01)
    return {"stopped_after": steps}


def die(on_event=None, stop=None):
    on_event({"kind": "started"})
    os._exit(3)


def test_the_child_runs_at_the_lowest_priority_and_its_events_and_result_come_back():
    events = []
    result = run_in_child(report, 5, on_event=events.append, word="tick")
    assert [e["i"] for e in events] == [0, 1, 2, 3, 4] and {e["kind"] for e in events} == {"tick"}
    assert result["pid"] != os.getpid() and result["nice"] == 19 and result["threads"] == 1


def test_the_childs_error_is_raised_here_with_its_kind_and_message():
    events = []
    with pytest.raises(DistillError, match="3 labels but the data has 2"):
        run_in_child(fail, on_event=events.append)
    assert events == [{"kind": "started"}]


def test_a_stop_request_reaches_the_child():
    events = []
    result = run_in_child(until_stopped, on_event=events.append, stop=lambda: len(events) >= 3)
    assert result["stopped_after"] == len(events) >= 3


def test_a_child_that_dies_is_a_clear_error():
    with pytest.raises(CodError, match="exit code 3"):
        run_in_child(die)


def test_distillations_go_to_a_child_in_public_mode_unless_turned_off_or_on_zerogpu(monkeypatch):
    from cod.public import jobs_in_child

    for name in ("COD_PUBLIC", "SPACE_ID", "COD_JOB_PROCESS", "SPACES_ZERO_GPU"):
        monkeypatch.delenv(name, raising=False)
    assert not jobs_in_child()  # locally: in the app's own worker thread, as before
    monkeypatch.setenv("COD_PUBLIC", "1")
    assert jobs_in_child()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not jobs_in_child()  # the GPU is lent to the app's process
    monkeypatch.delenv("SPACES_ZERO_GPU")
    monkeypatch.setenv("COD_JOB_PROCESS", "0")
    assert not jobs_in_child()
