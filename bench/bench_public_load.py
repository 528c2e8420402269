"""Public-mode load: N concurrent visitors (gradio_client threads) against one app while a distillation runs.

Starts the app in public mode (COD_PUBLIC=1) on a free loopback port with a throw-away store. One extra visitor starts
a distillation first (in public mode it runs in a child process at nice 19, throughout). Then each of N visitors, in
its own thread and its own session (an anonymous identity of its own): uploads its own copy of the example CSV (so its
project has its own name), draws k=8, generates counterfactuals offline, and makes E live edits (the live
counterfactual endpoint) and E live teacher predictions (the Models tab endpoint), each after the previous one was
answered. Finally every visitor tries to open the next visitor's project (must fail) and its own (must work).

The journeys go through gradio_client. The live calls, by default, go as the page's own live previews go since the
light route (`--client route`, components/live_route.py): one JSON POST per keystroke to /cod/live/KIND with the
session's key (a browser gets it on page load; this client from the `/live_key` endpoint), on one kept-alive
connection per visitor. `--client http` sends them through Gradio's queue instead (POST /gradio_api/call/NAME, then
its event stream: the /predict and /live_counterfactual endpoints API clients use, and the page's path before the
light route); `--client gradio` through gradio_client (its polling threads add up to 50 ms to each round trip).

The app runs in its own process (the clients' threads would otherwise share its interpreter). Reports live-prediction
latency p50/p95 (the client's round trip), where the time goes (the handlers' and the teacher forwards' own times
inside the server, and the CPU seconds of the server, its child processes and this client), errors, the server's
peak memory (VmHWM) and the isolation result.

    python bench/bench_public_load.py [--visitors 20] [--edits 15] [--models tiny|demo] [--client route|http|gradio]

`--models demo` uses the embedded demo teacher (all-mpnet-base-v2 + head, 110M parameters; built once) and student;
`tiny` a word-weight teacher and a tiny student built in code (the app machinery alone).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["COD_PUBLIC"] = "1"
# The owner's limits, raised for the bench's own background distillation (it is stopped once the visitors are done).
os.environ.setdefault("COD_MAX_EPOCHS", "100000")
os.environ.setdefault("COD_MAX_STEPS", "10000000")

EXAMPLE = ROOT / "assets" / "example_reviews.csv"
LOAD_BEFORE = " ".join(f"{x:.1f}" for x in os.getloadavg())
EDITS = ["really", "quite", "truly", "so", "very", "rather", "fairly", "most", "pretty", "deeply"]


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process (VmHWM), MB (nan once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_services(root: Path, models: str):
    from components.services import Services

    if models == "demo":
        from cod import DEMO

        return Services(teacher=DEMO, student=DEMO, store_path=root / "cod.db", artifacts=root / "art")
    from tests.tiny import make_tiny_classifier, make_word_classifier

    teacher = str(make_word_classifier(root / "teacher"))
    student = str(make_tiny_classifier(root / "student", hidden=16, layers=1, seed=1))
    os.environ["COD_ALLOWED_MODELS"] = f"{teacher},{student}"
    return Services(teacher=teacher, student=student, store_path=root / "cod.db", artifacts=root / "art")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (the distillation's worker process, when there is one)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def cpu_snapshot(server: int) -> dict[str, float]:
    """CPU seconds so far of the server, its child processes (alive now) and this client process."""
    kids = 0.0
    for kid in children(server):
        try:
            kids += cpu_seconds(kid)
        except OSError:
            continue
    times = os.times()
    return {"server": cpu_seconds(server), "server children": kids, "bench client": times.user + times.system}


def percentiles(values: list[float]) -> str:
    """'p50 X ms; p95 Y ms (n)' of a list of milliseconds."""
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered):.0f} ms; p95 {p95:.0f} ms; n {len(ordered)}"


def server_breakdown(path: Path, since: float, until: float) -> list[str]:
    """Lines on the server's own timings during the visitors' phase (see `record_server_times`)."""
    import json

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    rows = [r for r in rows if since <= r["at"] <= until]
    lines = []
    for kind in ("predict", "live_counterfactual", "forward", "preview forward"):
        ms = [r["ms"] for r in rows if r["kind"] == kind]
        extra = ""
        if kind.endswith("forward") and ms:
            sizes = [r["n"] for r in rows if r["kind"] == kind]
            extra = f"; texts per forward: mean {statistics.mean(sizes):.1f}, max {max(sizes)}"
        lines.append(f"   server {kind}: {percentiles(ms)}{extra}")
    return lines


class LiveCalls:
    """A visitor's live calls through Gradio's own HTTP API (POST /gradio_api/call/NAME, then its event stream), in
    the visitor's session: what a browser's request goes through on the server, without gradio_client's polling
    threads (they sleep 50 ms between looks at their message queue and add that to every round trip)."""

    def __init__(self, url: str, session_hash: str) -> None:
        from urllib.parse import urlparse

        self.address = urlparse(url)
        self.session_hash = session_hash

    def __call__(self, *data, api_name: str):
        import http.client
        import json

        conn = http.client.HTTPConnection(self.address.hostname, self.address.port, timeout=120)
        try:
            body = json.dumps({"data": list(data), "session_hash": self.session_hash})
            conn.request("POST", f"/gradio_api/call{api_name}", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            event_id = json.loads(reply.read())["event_id"]
            conn.request("GET", f"/gradio_api/call{api_name}/{event_id}")
            stream = conn.getresponse()
            event = ""
            for raw in stream:
                line = raw.decode().strip()
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    if event == "error":
                        raise RuntimeError(line[5:].strip()[:200])
                    return json.loads(line[5:])
            raise RuntimeError(f"the stream of {api_name} ended without a result")
        finally:
            conn.close()


class RouteCalls:
    """A visitor's live calls as the browser's page makes them: a JSON POST to the light route (/cod/live/KIND, see
    components/live_route.py) with the session's key, on one kept-alive connection (as a browser keeps it)."""

    KINDS = {"/predict": "predict", "/live_counterfactual": "counterfactual"}

    def __init__(self, url: str, key: str) -> None:
        import http.client
        from urllib.parse import urlparse

        address = urlparse(url)
        self.conn = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        self.key = key

    def __call__(self, *data, api_name: str):
        import json

        body = {"key": self.key, "text": data[-1]}
        if api_name == "/predict":
            body["teacher"] = data[0]
        self.conn.request(
            "POST", f"/cod/live/{self.KINDS[api_name]}", json.dumps(body), {"Content-Type": "application/json"}
        )
        reply = self.conn.getresponse()
        answer = json.loads(reply.read())
        if reply.status != 200:
            raise RuntimeError(f"{reply.status}: {answer.get('error', '')[:200]}")
        if answer.get("superseded"):  # never expected here: a visitor waits for each answer before the next call
            raise RuntimeError("superseded")
        return answer["html"]


class Visitor(threading.Thread):
    """One visitor's journey; latencies of live calls in `latencies`, failures in `errors`."""

    def __init__(self, url: str, n: int, edits: int, files: Path, teacher: str, client: str = "route") -> None:
        super().__init__(name=f"visitor-{n}", daemon=True)
        self.url, self.n, self.edits, self.teacher, self.mode = url, n, edits, teacher, client
        self.live = None
        self.csv = files / f"visitor{n:02d}.csv"
        shutil.copy(EXAMPLE, self.csv)
        self.project = f"visitor{n:02d}-k8-seed0"
        self.latencies: list[float] = []
        self.by_endpoint: dict[str, list[float]] = collections.defaultdict(list)  # ms
        self.errors: list[str] = []
        self.client = None

    def call(self, *args, api_name: str, live: bool = False):
        start = time.perf_counter()
        try:
            if live and self.live is not None:
                out = self.live(*args, api_name=api_name)
            else:
                out = self.client.predict(*args, api_name=api_name)
        except Exception as err:  # noqa: BLE001 - a benchmark counts every failure
            self.errors.append(f"{api_name}: {type(err).__name__}: {str(err)[:120]}")
            return None
        if live:
            self.latencies.append(time.perf_counter() - start)
            self.by_endpoint[api_name].append(1000 * self.latencies[-1])
        return out

    def run(self) -> None:
        from gradio_client import Client, handle_file

        from components.counterfactuals import OFFLINE

        self.client = Client(self.url, verbose=False)
        self.call(handle_file(str(self.csv)), api_name="/upload")
        self.call(8, 0, api_name="/draw")
        self.call(OFFLINE, "", "", "", api_name="/generate")
        if self.mode == "route":  # the page gets its key on load; an API client asks for it
            self.live = RouteCalls(self.url, self.client.predict(api_name="/live_key"))
        elif self.mode == "http":
            self.live = LiveCalls(self.url, self.client.session_hash)
        text = "the movie was awful and the acting brilliant ."
        for i in range(self.edits):
            word = EDITS[(i + self.n) % len(EDITS)]
            self.call(f"{text[:-2]} {word} .", api_name="/live_counterfactual", live=True)
            self.call(self.teacher, f"a {word} good film , visitor {self.n}", api_name="/predict", live=True)


def isolation(visitors: list[Visitor]) -> tuple[int, int]:
    """(own projects opened, other visitors' projects refused)."""
    own = refused = 0
    for i, v in enumerate(visitors):
        other = visitors[(i + 1) % len(visitors)]
        try:
            v.client.predict(other.project, api_name="/open_project")
        except Exception:  # noqa: BLE001 - the refusal is what we expect
            refused += 1
        try:
            report = v.client.predict(v.project, api_name="/open_project")[0]
            own += v.project.split("-")[0] in report
        except Exception as err:  # noqa: BLE001
            v.errors.append(f"open own project: {err}")
    return own, refused


def lighter_gradio_client() -> None:
    """One SSL context for all of this process's gradio_client requests: gradio_client opens a new httpx client per
    request and httpx builds a new SSL context for each (reading and parsing the CA certificates), even for http://
    on loopback; that was over half of this client's CPU during the journeys, taken from the server's two cores."""
    import functools

    import httpx._transports.default as transports

    made = functools.lru_cache(maxsize=8)(transports.create_ssl_context)
    transports.create_ssl_context = lambda verify=True, cert=None, trust_env=True: made(verify, cert, trust_env)


def start_distillation(url: str, epochs: int):
    """A separate visitor whose distillation keeps the worker busy during the run; returns (client, job) once it
    trains (its first step is reported), so the visitors arrive while it trains, not while it loads."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict(handle_file(str(EXAMPLE)), api_name="/upload")
    client.predict(8, 0, api_name="/draw")
    job = client.submit("KD (logits)", False, 20, 2, 1, epochs, 1e-3, 2, False, 8, api_name="/distill")
    deadline = time.time() + 600
    while distillation_step(job) < 1:
        if job.done() or time.time() > deadline:
            raise SystemExit("the background distillation did not start training")
        time.sleep(1)
    return client, job


def distillation_step(job) -> int:
    """The last step the distillation's progress line reported (0 before its first)."""
    import re

    for output in reversed(job.outputs()):
        for item in output if isinstance(output, list | tuple) else [output]:
            found = re.search(r"Step (\d+) of", item) if isinstance(item, str) else None
            if found:
                return int(found.group(1))
    return 0


def record_server_times(path: Path) -> None:
    """Time, inside the server, each live handler and each teacher forward (one JSON line each, appended to `path`),
    so the client's round trip splits into queueing/transport and the handler's own work."""
    import json

    import components.counterfactuals as cf_tab
    import components.models as models_tab
    from cod.modeling.precision import PreviewScorer
    from cod.modeling.scoring import Teacher

    out = path.open("a", buffering=1)
    lock = threading.Lock()

    def write(**row) -> None:
        with lock:
            out.write(json.dumps(row) + "\n")

    def timed(kind: str, fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                write(kind=kind, ms=1000 * (time.perf_counter() - start), at=time.time())

        return call

    models_tab.predict_html = timed("predict", models_tab.predict_html)
    cf_tab.live_html = timed("live_counterfactual", cf_tab.live_html)
    forward, preview_forward = Teacher._forward, PreviewScorer._forward

    def timed_forward(run, kind: str):
        def call(self, texts):
            start = time.perf_counter()
            try:
                return run(self, texts)
            finally:
                write(kind=kind, ms=1000 * (time.perf_counter() - start), n=len(texts), at=time.time())

        return call

    Teacher._forward = timed_forward(forward, "forward")  # the teacher's own (float32): stored answers, rechecks
    PreviewScorer._forward = timed_forward(preview_forward, "preview forward")  # live previews in bfloat16


def serve(root: Path, models: str, port: int) -> None:
    """The server process: the app in public mode with the teacher loaded, until killed."""
    from app import build_app, launch_options, set_torch_threads
    from cod.paths import models_dir

    set_torch_threads()  # COD_TORCH_THREADS, as `python app.py` does

    built = models_dir()  # the built demo models stay where they are; caches and the store start empty
    (root / "home").mkdir(exist_ok=True)
    (root / "home" / "models").symlink_to(built, target_is_directory=True)
    os.environ["COD_HOME"] = str(root / "home")
    record_server_times(root / "server-times.jsonl")
    services = make_services(root, models)
    teacher = services.teacher()  # loaded before the visitors arrive, as `python app.py` does with warm()
    services.prepare_live(teacher)
    (root / "precision.txt").write_text(services.live_precision(teacher))
    (root / "teacher.txt").write_text(services.default_teacher)
    blocks = build_app(services)
    blocks.queue(default_concurrency_limit=4)
    blocks.launch(server_name="127.0.0.1", server_port=port, quiet=True, **launch_options(blocks))


def start_server(root: Path, models: str) -> tuple[subprocess.Popen, str, str]:
    """The app in its own process (so the clients' threads do not share its interpreter); (process, url, teacher)."""
    from tests.e2e.app_server import free_port

    port = free_port()
    cmd = [sys.executable, __file__, "--serve", str(port), "--root", str(root), "--models", models]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=5).status == 200 and (root / "teacher.txt").exists():
                return server, url, (root / "teacher.txt").read_text()
        except OSError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        time.sleep(1)
    server.kill()
    raise SystemExit("the server did not start within 10 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--edits", type=int, default=15, help="live edits and live predictions per visitor")
    parser.add_argument("--models", choices=["tiny", "demo"], default="tiny")
    parser.add_argument(
        "--epochs",
        type=int,
        default=20000,
        help="epochs of the background distillation (stopped " "when the visitors are done)",
    )
    parser.add_argument(
        "--client",
        choices=["route", "http", "gradio"],
        default="route",
        help="live calls as the page makes them, through the light route (route, default), through Gradio's HTTP "
        "API and queue (http: the /predict and /live_counterfactual endpoints API clients use), or through "
        "gradio_client (adds its polling delay)",
    )
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--root", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(Path(args.root), args.models, args.serve)

    lighter_gradio_client()
    root = Path(tempfile.mkdtemp(prefix="cod-load-"))
    server, url, teacher = start_server(root, args.models)
    try:
        owner, distillation = start_distillation(url, args.epochs)
        files = root / "uploads"
        files.mkdir()
        visitors = [Visitor(url, n, args.edits, files, teacher, args.client) for n in range(args.visitors)]
        start, started_at, cpu_before = time.perf_counter(), time.time(), cpu_snapshot(server.pid)
        first_step = distillation_step(distillation)
        for v in visitors:
            v.start()
        for v in visitors:
            v.join()
        wall, ended_at = time.perf_counter() - start, time.time()
        cpu_after = cpu_snapshot(server.pid)
        child_peaks = [peak_rss_mb(kid) for kid in children(server.pid)]  # the distillation's process, if any
        busy, last_step = not distillation.done(), distillation_step(distillation)
        own, refused = isolation(visitors)
        owner.predict(api_name="/stop_distill")
        server_peak = peak_rss_mb(server.pid)
    finally:
        server.kill()
        server.wait()
    latencies = sorted(x for v in visitors for x in v.latencies)
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    precision = (root / "precision.txt").read_text()
    errors = [e for v in visitors for e in v.errors]
    ms = [1000 * x for x in latencies]
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))] if ms else float("nan")
    print(
        f"models: {args.models} (teacher {Path(teacher).name}); visitors: {args.visitors}; cores: {os.cpu_count()}; "
        f"load average before: {LOAD_BEFORE}, after: {load_after}; live calls through: {args.client}; "
        f"COD_TORCH_THREADS={os.environ.get('COD_TORCH_THREADS', '(torch default)')}; live precision: {precision} "
        f"(COD_LIVE_PRECISION={os.environ.get('COD_LIVE_PRECISION', 'auto')})"
    )
    print(
        f"journeys (upload, draw, generate, {args.edits} live edits + {args.edits} live predictions each): "
        f"{wall:.1f} s wall; the distillation trained throughout: step {first_step} when the visitors started, "
        f"{last_step} when they were done, still running: {busy}"
    )
    print(f"live calls: {len(ms)}; p50 {statistics.median(ms):.0f} ms; p95 {p95:.0f} ms; max {max(ms):.0f} ms")
    for api in ("/predict", "/live_counterfactual"):
        print(f"   client round trip {api}: {percentiles([x for v in visitors for x in v.by_endpoint[api]])}")
    print("where the time goes (inside the server, visitors' phase):")
    for line in server_breakdown(root / "server-times.jsonl", started_at, ended_at):
        print(line)
    used = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    total = sum(used.values()) or 1.0
    shares = "; ".join(f"{k} {v:.0f} s ({100 * v / total:.0f}%)" for k, v in used.items())
    print(f"CPU during the visitors' phase ({wall:.0f} s wall x {os.cpu_count()} cores): {shares}")
    print(f"errors: {len(errors)}")
    kinds = collections.Counter(e.split(":")[0] + ": " + e.split(":")[1].strip() for e in errors)
    for kind, n in kinds.most_common():
        print(f"   {n} x {kind}")
    print(f"isolation: {own}/{len(visitors)} opened their own project; {refused}/{len(visitors)} refused another's")
    print(f"peak memory of the server process (VmHWM): {server_peak:.0f} MB")
    if child_peaks:
        print(f"peak memory of its child process(es) (VmHWM): {', '.join(f'{m:.0f} MB' for m in child_peaks)}")


if __name__ == "__main__":
    main()
