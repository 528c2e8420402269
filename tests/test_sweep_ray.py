"""Sweeps on Ray: a local Ray runtime, and a two-node cluster on this machine (a head and a second node joined by
address, loopback only), compared with the local backend; a node killed mid-sweep loses no finished cell."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from cod.config import SweepConfig
from tests.test_sweep import _pairs, _sentences

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(300)

STORE_BYTES = 100 * 1024**2  # keep Ray's object store small on a shared machine
RAY = str(Path(sys.executable).with_name("ray"))


def _task():
    from cod.data.readers import TaskSplits

    train, validation, test = _sentences(40, 0), _sentences(10, 1), _sentences(24, 2)
    test = [type(e)(e.text + " test", e.label) for e in test]
    return TaskSplits("tiny", train, validation, test, ["negative", "positive"])


@pytest.fixture(scope="module")
def task():
    return _task()


def _config(out, student, **grid):
    grid = {"ks": (4,), "seeds": (0, 1), "methods": ("kd", "kd+cod"), "probe_pairs": 0, "figures": False, **grid}
    return SweepConfig(
        out=str(out),
        task="tiny",
        student=str(student),
        distill={"epochs": 2, "batch_size": 4, "evaluations": 1, "max_length": 16},
        **grid,
    )


def _run(config, task, backend=None, **kwargs):
    from cod.sweep import sweep
    from tests.word_teacher import word_teacher

    teacher = word_teacher("sentiment")
    return sweep(
        config, teacher=teacher, splits=task, counterfactuals=_pairs(task.train, teacher), backend=backend, **kwargs
    )


def _accuracies(out) -> pd.Series:
    results = pd.read_csv(Path(out) / "results.csv")
    assert set(results.status) == {"done"}
    return results.set_index(["method", "k", "seed"]).student_accuracy.sort_index()


def test_sweep_on_a_local_ray_runtime_matches_the_local_backend(task, tiny_student, tmp_path, cod_home):
    from cod.sweep import RayBackend
    from cod.sweep.record import StoreRecorder
    from components import compare
    from components.services import Services
    from components.state import PageState

    _run(
        _config(tmp_path / "local", tiny_student, figures=True, probe_pairs=6),
        task,
        probes=_pairs(task.test[:6], _teacher()),
    )
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=STORE_BYTES, _temp_dir=_short_dir())
    try:
        events, services = [], Services(store_path=tmp_path / "cod.db")
        config = _config(tmp_path / "ray", tiny_student, figures=True, probe_pairs=6)
        recorder = StoreRecorder(services.store(), config)

        def on_event(event):
            events.append(event)
            recorder(event)  # as the command line does: each row reaches the store when its cell finishes
            if event.kind == "cell":
                assert len(services.store().sweep_results(recorder.sweep_id)) == len(
                    [e for e in events if e.kind == "cell"]
                )

        result = _run(
            config, task, RayBackend(cpus_per_cell=1), probes=_pairs(task.test[:6], _teacher()), on_event=on_event
        )
    finally:
        ray.shutdown()
    fig = compare.accuracy_figure(services, PageState())  # the app's Compare tab plots the Ray sweep like any other
    assert fig is not None and {"kd", "kd+cod"} <= {t.name for t in fig.data}
    assert sorted(e.cell for e in events if e.kind == "cell") == [
        "kd-k4-s0",
        "kd-k4-s1",
        "kd_cod-k4-s0",
        "kd_cod-k4-s1",
    ]
    pd.testing.assert_series_equal(_accuracies(tmp_path / "ray"), _accuracies(tmp_path / "local"))
    # The figures drawn on the workers came back into the sweep folder.
    assert (tmp_path / "ray" / "figures" / "edit_paths-kd_cod-k4-s0.json").exists()
    assert sorted(p.name for p in (tmp_path / "ray" / "figures").iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "figures").iterdir()
    )
    assert list(result.summary.method) == ["kd", "kd+cod"]


def _teacher():
    from tests.word_teacher import word_teacher

    return word_teacher("sentiment")


# ----------------------------------------------------------------------------- a two-node cluster on this machine


def _short_dir() -> str:
    # Ray puts unix sockets under its temp dir, whose paths must stay under 108 characters.
    return tempfile.mkdtemp(prefix="codray-", dir="/tmp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], temp_dir: str) -> subprocess.Popen:
    """`ray start ... --block` in its own process group, so the node and all it started can be killed together."""
    env = {**os.environ, "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}
    cmd = [
        RAY,
        "start",
        *args,
        "--num-cpus=1",
        f"--object-store-memory={STORE_BYTES}",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        "--block",
    ]
    return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def _wait_for(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def cluster(monkeypatch):
    """A head (1 CPU) and a second node (1 CPU) joined to it by address; the driver (this process) connected."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a throwaway cluster on this machine: no token to share
    temp_dir, port = _short_dir(), _free_port()
    nodes = [_start_node(["--head", f"--port={port}", "--include-dashboard=false"], temp_dir)]
    try:
        _wait_for(lambda: _port_open(port), "the Ray head listening")
        nodes.append(_start_node([f"--address=127.0.0.1:{port}"], temp_dir))
        ray.init(address=f"127.0.0.1:{port}", _node_ip_address="127.0.0.1")
        _wait_for(lambda: ray.cluster_resources().get("CPU", 0) == 2, "two nodes in the cluster")
        yield {"address": f"127.0.0.1:{port}", "head": nodes[0], "worker": nodes[1]}
    finally:
        ray.shutdown()
        for node in reversed(nodes):
            _kill_group(node)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _cluster_driver(address: str, worker_group: int, student: str, out: str) -> None:
    """The sweep's driver, in a fresh process (one process joins one Ray cluster in its life): a first run in which the
    second node is killed after the first finished cell and the sweep stopped after the fourth, then a rerun."""
    import json

    from cod.sweep import RayBackend

    ray.init(address=address, _node_ip_address="127.0.0.1")
    try:
        task, config = _task(), _config(Path(out) / "ray", student, seeds=(0, 1, 2))
        backend, finished, events = RayBackend(address=address), [], []

        def on_event(event):
            if event.kind == "cell":
                finished.append(event.cell)
                if len(finished) == 1:  # the second node goes down mid-sweep: its cell runs again on the head
                    os.killpg(worker_group, signal.SIGKILL)

        _run(config, task, backend, on_event=on_event, stop=lambda: len(finished) >= 4)
        _run(config, task, backend, on_event=events.append)  # the rerun completes the grid on the head alone
    finally:
        ray.shutdown()
    record = {"first": finished, "rerun": [[e.kind, e.cell] for e in events]}
    (Path(out) / "driver.json").write_text(json.dumps(record))


def test_sweep_on_a_two_node_cluster_survives_a_killed_node_and_resumes(cluster, task, tiny_student, tmp_path):
    import json
    import multiprocessing

    ray.shutdown()  # the driver runs in its own process
    driver = multiprocessing.get_context("spawn").Process(
        target=_cluster_driver, args=(cluster["address"], cluster["worker"].pid, str(tiny_student), str(tmp_path))
    )
    driver.start()
    driver.join(timeout=240)
    if driver.is_alive():
        driver.kill()
    assert driver.exitcode == 0
    record = json.loads((tmp_path / "driver.json").read_text())
    assert 4 <= len(record["first"]) < 6  # stopped before the grid was complete
    rerun = record["rerun"]
    assert sorted(cell for kind, cell in rerun if kind == "skip") == sorted(record["first"])  # none lost
    assert len([cell for kind, cell in rerun if kind == "cell"]) == 6 - len(record["first"])
    local = _config(tmp_path / "local", tiny_student, seeds=(0, 1, 2))
    _run(local, task)
    pd.testing.assert_series_equal(_accuracies(tmp_path / "ray"), _accuracies(tmp_path / "local"))
