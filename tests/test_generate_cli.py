"""`python -m cod generate` end to end on a tiny word-driven teacher, a CSV file and a loopback chat server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cod.cli import main
from tests.tiny import make_word_classifier

ROWS = [
    ("the film was good", "positive"),
    ("a dull and tedious mess", "negative"),
    ("The acting was brilliant!", "positive"),
]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return str(make_word_classifier(tmp_path_factory.mktemp("word-binary")))


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in ROWS))
    return path


def _generate(capsys, *args):
    code = main(["generate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_one_record_per_example_and_resumes_from_cache(cod_home, teacher_dir, data_file, tmp_path, capsys):
    from cod.modeling.loading import clear_teacher_cache

    out_file = tmp_path / "cfes.jsonl"
    # The teacher as loaded does all the search's forwards (no bfloat16 screen), so its pass counts compare.
    exact = ("--screen-precision", "teacher")
    code, out, err = _generate(capsys, "--data", data_file, "--teacher", teacher_dir, "--out", out_file, *exact)
    assert code == 0, err
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["text"] for r in records] == [t for t, _ in ROWS]
    for r in records:
        assert {
            "text",
            "label",
            "teacher_probs",
            "counterfactual",
            "target_label",
            "counterfactual_teacher_probs",
            "flipped",
            "words_changed",
            "proposer",
        } <= set(r)
        assert r["flipped"] and r["proposer"] == "lexical" and r["target_label"] != r["label"]
        assert set(r["teacher_probs"]) == {"negative", "positive"}
    assert "flip rate 100.0% (3/3)" in out and "median words changed 1" in out and "tokens 0" in out
    assert "lexical counterfactuals" in err  # the progress bar

    clear_teacher_cache()  # a fresh process: the teacher's in-memory cache is gone, the disk cache stays
    code, again, _ = _generate(capsys, "--data", data_file, "--teacher", teacher_dir, "--out", out_file, *exact)
    assert code == 0
    assert [json.loads(line)["counterfactual"] for line in out_file.read_text().splitlines()] == [
        r["counterfactual"] for r in records
    ]
    passes = lambda text: int(text.split("teacher forward passes ")[1].split()[0])  # noqa: E731
    assert passes(again) < passes(out) / 3  # only the fingerprint, probes and originals ran again


def test_task_split_limit_and_options(cod_home, teacher_dir, tmp_path, capsys):
    out_file = tmp_path / "cfes.jsonl"
    code, out, err = _generate(
        capsys,
        "--data",
        "demo",
        "--split",
        "validation",
        "--limit",
        "2",
        "--teacher",
        teacher_dir,
        "--max-edits",
        "1",
        "--no-shrink",
        "--no-cache",
        "--out",
        out_file,
    )
    assert code == 0, err
    assert len(out_file.read_text().splitlines()) == 2 and "wrote 2 counterfactuals" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "missing.csv"], "not found"),
        (["--data", "demo", "--split", "dev"], "--split 'dev'"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--target", "neutral"], "--target 'neutral' is not one of the labels"),
        (["--out", "/nonexistent-folder/x.jsonl"], "does not exist"),
        (["--max-edits", "0"], "max_edits must be a positive integer"),
    ],
)
def test_bad_input_gives_one_clear_line(cod_home, teacher_dir, data_file, tmp_path, capsys, args, message):
    base = {"--data": str(data_file), "--out": str(tmp_path / "o.jsonl")}
    extra = dict(zip(args[::2], args[1:][::2]))
    argv = [x for k, v in {**base, **extra}.items() for x in (k, v)]
    code, _, err = _generate(capsys, *argv, "--teacher", teacher_dir)
    assert code == 2 and message in err and "Traceback" not in err


def test_labels_must_match_the_teacher(cod_home, teacher_dir, tmp_path, capsys):
    path = tmp_path / "topics.csv"
    path.write_text("text,label\nthe game,sports\na vote,politics\n")
    code, _, err = _generate(capsys, "--data", path, "--teacher", teacher_dir, "--out", tmp_path / "o.jsonl")
    assert code == 2 and "labels" in err


class _Chat(BaseHTTPRequestHandler):
    """A chat-completions endpoint that answers every request with the same two rewrites."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        content = json.dumps(["the film was awful", "the film was dull"])
        body = json.dumps(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": "tiny",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_llm_proposer_through_a_loopback_server(cod_home, teacher_dir, data_file, tmp_path, capsys, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        out_file = tmp_path / "llm.jsonl"
        code, out, err = _generate(
            capsys,
            "--data",
            data_file,
            "--limit",
            "1",
            "--teacher",
            teacher_dir,
            "--proposer",
            "llm",
            "--llm-base-url",
            url,
            "--llm-model",
            "tiny",
            "--candidates",
            "2",
            "--out",
            out_file,
        )
        assert code == 0, err
        (record,) = [json.loads(line) for line in out_file.read_text().splitlines()]
        assert (
            record["flipped"]
            and record["proposer"] == "llm"
            and record["counterfactual"] in {"the film was awful", "the film was dull"}
        )
        assert "flip rate 100.0% (1/1)" in out and "tokens 42" in out
    finally:
        server.shutdown()
        server.server_close()


def test_llm_without_key_or_endpoint_says_what_to_set(cod_home, teacher_dir, data_file, tmp_path, capsys, monkeypatch):
    for name in ("COD_LLM_API_KEY", "OPENAI_API_KEY", "COD_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = _generate(
        capsys, "--data", data_file, "--teacher", teacher_dir, "--proposer", "llm", "--out", tmp_path / "o.jsonl"
    )
    assert code == 2 and "COD_LLM_API_KEY" in err and "Traceback" not in err
