"""The LLM proposer through the real `openai` client against a scripted server on loopback.

The teacher is a real tiny model with hand-set word weights (tests/word_teacher.py): "good" reads positive and
"bad" negative, so every flip below is the teacher's verdict on the text the server sent back.
"""

import json
import logging
import re
import time

import pytest

from cod.config import LLMConfig
from cod.counterfactuals.llm import LLMProposer, endpoint_name, resolve_api_key
from cod.counterfactuals.prompts import VERSIONS, build_messages, choose_template, parse_candidates
from cod.data.readers import Example
from cod.errors import ConfigError, ProposerError
from tests.fake_openai import FakeOpenAI, Reply, Scripted, closed_port_url, fail, ok, original_text
from tests.word_teacher import word_teacher

KEY = "sk-test-SECRET-4242"
GOOD = "the film is good"
TEXTS = [
    GOOD,
    "the story is good",
    "the plot was good",
    "this movie is great",
    "the acting is fun",
    "that story was good",
]


@pytest.fixture(scope="module")
def teacher():
    return word_teacher("sentiment")


@pytest.fixture(scope="module")
def topics():
    return word_teacher("topics")


def proposer(url, tmp_path, **settings) -> LLMProposer:
    """A proposer with short timeouts and retry delays, so failure tests take milliseconds."""
    config = LLMConfig(
        base_url=url,
        model="fake-model",
        candidates=2,
        rounds=2,
        concurrency=2,
        timeout_s=2.0,
        max_retries=2,
        retry_delay_s=0.01,
        max_retry_after_s=1.0,
    )
    return LLMProposer(config.replace(**settings), api_key=KEY, cache_dir=tmp_path / "cache")


def negate(body: dict) -> Reply:
    """A sensible LLM: swap the positive word for a negative one."""
    text = original_text(body)
    return ok([text.replace("good", "bad").replace("great", "awful").replace("fun", "boring")])


def examples(texts=TEXTS, label=1):
    return [Example(t, label) for t in texts]


def test_flip_minimal_edit_and_every_field(teacher, tmp_path):
    script = Scripted({GOOD: [ok(["the film is awful and terrible", "the film is bad"])]})
    with FakeOpenAI(script) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
    assert cf.counterfactual == "the film is bad" and cf.flipped and cf.error == ""
    assert cf.target == 0 and cf.label == 1 and cf.teacher_probs[1] > 0.5
    assert cf.counterfactual_teacher_probs[0] > 0.5 and cf.words_changed == 1
    assert [(e.old, e.new) for e in cf.edits] == [(("good",), ("bad",))]
    assert cf.attempts == 2 and cf.proposer == "llm" and cf.model == "fake-model"
    assert cf.prompt_version == VERSIONS["sentiment"] and cf.latency_s > 0
    sent = server.requests[0].body
    assert cf.tokens == server.tokens > 0
    assert sent["model"] == "fake-model" and sent["max_tokens"] == 256
    assert cf.extra["rounds"] == 1 and cf.extra["requests"] == 1 and len(cf.extra["candidates"]) == 2
    record = cf.to_record(teacher.label_names)
    assert record["target_label"] == "negative" and record["flipped"] is True and record["tokens"] == cf.tokens


def test_ties_in_words_changed_go_to_the_highest_target_probability(teacher, tmp_path):
    with FakeOpenAI(Scripted({GOOD: [ok(["the film is awful", "the film is bad"])]})) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
    assert cf.counterfactual == "the film is bad"  # "bad" weighs more than "awful" in the teacher


def test_feedback_round_carries_the_teachers_verdict(teacher, tmp_path):
    script = Scripted({GOOD: [ok(["the film is very good", "the film is fun"]), ok(["the film is bad"])]})
    with FakeOpenAI(script) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
        second = server.requests[1].body["messages"]
    assert cf.flipped and cf.counterfactual == "the film is bad" and cf.attempts == 3
    assert cf.extra["rounds"] == 2 and server.count == 2
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == json.dumps(["the film is very good", "the film is fun"])
    assert '"the film is very good" -> positive 0.87, negative 0.13' in second[3]["content"]
    assert 'classified as "negative"' in second[3]["content"]


def test_no_flip_keeps_the_closest_candidate_and_says_so(teacher, tmp_path):
    script = Scripted({GOOD: [ok(["the film is very good", "the film is not good"])]})
    with FakeOpenAI(script) as server:
        [cf] = proposer(server.base_url, tmp_path, rounds=3).propose(examples([GOOD]), teacher)
    assert not cf.flipped and cf.counterfactual == "the film is not good"
    assert "None of the 2 rewrites flipped the teacher to 'negative' in 3 round(s)" in cf.error
    # Later rounds repeated the same rewrites: nothing new to score, and the reason is recorded.
    assert (
        server.count == 3 and cf.attempts == 2 and cf.extra["problems"] == ["every rewrite had been tried already"] * 2
    )
    assert '"the film is not good" -> positive 0.67' in server.requests[2].body["messages"][-1]["content"]


@pytest.mark.parametrize(
    "target, wanted, reply, expected",
    [
        (None, "politics", ["the game team law", "the vote team law"], "the vote team law"),  # runner-up
        ("tech", "tech", ["the game computer phone"], "the game computer phone"),
    ],
)
def test_multiclass_targets(topics, tmp_path, target, wanted, reply, expected):
    text = "the game team ball"
    with FakeOpenAI(Scripted({text: [ok(reply)]})) as server:
        [cf] = proposer(server.base_url, tmp_path).propose([Example(text, 0)], topics, target=target)
        prompt = server.requests[0].body["messages"][1]["content"]
    assert topics.label_names[cf.target] == wanted and cf.flipped and cf.counterfactual == expected
    assert cf.prompt_version == VERSIONS["multiclass"]
    assert f'clearly belongs to "{wanted}"' in prompt and '"sports", "politics", "tech"' in prompt


@pytest.mark.parametrize(
    "replies, problem",
    [
        ([ok("I'm sorry, but I can't help with rewriting reviews."), ok(["the film is bad"])], "the model refused"),
        ([ok(""), ok(["the film is bad"])], "an empty reply"),
        ([Reply(content=None), ok(["the film is bad"])], "an empty reply"),
        ([ok([GOOD]), ok(["the film is bad"])], "repeated the input unchanged"),
        ([ok("<think>flip it</think>"), ok(["the film is bad"])], "an empty reply"),
    ],
    ids=["refusal", "empty", "null-content", "identical", "only-thinking"],
)
def test_useless_replies_are_asked_again(teacher, tmp_path, replies, problem):
    with FakeOpenAI(Scripted({GOOD: replies})) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
        feedback = server.requests[1].body["messages"][-1]["content"]
    assert cf.flipped and cf.counterfactual == "the film is bad" and server.count == 2
    assert problem in cf.extra["problems"][0] and "no usable rewrite" in feedback


@pytest.mark.parametrize(
    "content",
    [
        '["the film is bad", "the film is aw',  # cut off by max_tokens
        'Here are two rewrites:\n1. "the film is bad"\n2) Counterfactual: the film is dull',
        '```json\n{"rewrites": [{"text": "the film is bad"}]}\n```',
        "Sure! Rewritten text: “the film is bad”",
    ],
    ids=["truncated-json", "numbered-lines", "fenced-object", "curly-quotes"],
)
def test_malformed_and_chatty_replies_still_give_candidates(teacher, tmp_path, content):
    with FakeOpenAI(Scripted({GOOD: [ok(content)]})) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
    assert cf.flipped and cf.counterfactual == "the film is bad" and server.count == 1


@pytest.mark.parametrize(
    "first, settings",
    [
        (fail(503, "overloaded"), {}),
        (fail(500, "boom"), {}),
        (Reply(delay_s=1.5), {"timeout_s": 0.3}),
        (Reply(raw=b"<html>502 Bad Gateway</html>"), {}),
    ],
    ids=["503", "500", "timeout", "not-json-body"],
)
def test_transient_failures_are_retried(teacher, tmp_path, first, settings):
    with FakeOpenAI(Scripted({GOOD: [first, ok(["the film is bad"])]})) as server:
        [cf] = proposer(server.base_url, tmp_path, **settings).propose(examples([GOOD]), teacher)
    assert cf.flipped and cf.error == "" and server.count == 2


def test_429_retry_after_is_honoured(teacher, tmp_path):
    script = Scripted({GOOD: [fail(429, "slow down", headers={"Retry-After": "0.4"}), ok(["the film is bad"])]})
    with FakeOpenAI(script) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
        gap = server.requests[1].time - server.requests[0].time
    assert cf.flipped and gap >= 0.35


def test_429_retry_after_is_bounded(teacher, tmp_path):
    script = Scripted({GOOD: [fail(429, "slow down", headers={"Retry-After": "3600"}), ok(["the film is bad"])]})
    with FakeOpenAI(script) as server:
        started = time.monotonic()
        [cf] = proposer(server.base_url, tmp_path, max_retry_after_s=0.2).propose(examples([GOOD]), teacher)
        assert time.monotonic() - started < 10
        gap = server.requests[1].time - server.requests[0].time
    assert cf.flipped and gap >= 0.15


def test_a_failing_example_gets_an_error_and_the_batch_goes_on(teacher, tmp_path):
    script = Scripted({GOOD: [fail(503, "down for maintenance")]}, default=negate)
    with FakeOpenAI(script) as server:
        results = proposer(server.base_url, tmp_path, max_retries=2).propose(examples(TEXTS[:3]), teacher)
        assert script.seen[GOOD] == 3  # the first try and two retries
    assert results[0].counterfactual == "" and not results[0].flipped
    assert "failed 3 time(s)" in results[0].error and "HTTP 503: down for maintenance" in results[0].error
    assert all(cf.flipped and cf.error == "" for cf in results[1:])
    assert [cf.text for cf in results] == TEXTS[:3]


def test_always_refusing_model_gives_a_clear_error(teacher, tmp_path):
    with FakeOpenAI(Scripted({GOOD: [ok("I cannot do that.")]})) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
    assert server.count == 2 and not cf.flipped and cf.counterfactual == ""
    assert cf.error.startswith("No usable rewrite from the model in 2 round(s): the model refused")


def test_bad_request_is_not_retried(teacher, tmp_path):
    with FakeOpenAI(Scripted({GOOD: [fail(400, "context length exceeded")]})) as server:
        [cf] = proposer(server.base_url, tmp_path).propose(examples([GOOD]), teacher)
    assert server.count == 1 and "rejected the request (HTTP 400: context length exceeded)" in cf.error


def test_connection_refused_is_a_per_example_error(teacher, tmp_path):
    url = closed_port_url()
    results = proposer(url, tmp_path, max_retries=1).propose(examples(TEXTS[:2]), teacher)
    for cf in results:
        assert "cannot connect" in cf.error and f"{url} failed 2 time(s)" in cf.error and not cf.flipped


@pytest.mark.parametrize("status, advice", [(401, "rejected the API key"), (404, "check --llm-model")])
def test_bad_key_or_unknown_model_stops_the_batch(teacher, tmp_path, status, advice):
    # Some servers echo the key back in the error: it must not reach the user.
    with FakeOpenAI(Scripted({}, default=fail(status, f"Incorrect API key provided: {KEY}"))) as server:
        with pytest.raises(ProposerError, match=advice) as err:
            proposer(server.base_url, tmp_path, concurrency=1).propose(examples(TEXTS), teacher)
        assert server.count < len(TEXTS)  # the batch stopped early
    assert KEY not in str(err.value) and "***" in str(err.value)


def test_the_key_is_sent_but_never_shown_stored_or_logged(teacher, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(Scripted({GOOD: [fail(503), ok(["the film is bad"])]})) as server:
        llm = proposer(server.base_url, tmp_path)
        [cf] = llm.propose(examples([GOOD]), teacher)
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert cf.flipped
    assert KEY not in repr(llm) and KEY not in str(llm.config.to_dict()) and KEY not in caplog.text
    stored = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert stored and KEY not in stored and KEY not in json.dumps(cf.to_record(teacher.label_names))


def test_key_resolution(monkeypatch):
    monkeypatch.delenv("COD_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProposerError, match="set COD_LLM_API_KEY or OPENAI_API_KEY"):
        resolve_api_key(None, None)
    assert resolve_api_key(None, "http://127.0.0.1:8080/v1") == "not-needed"
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    assert resolve_api_key(None, None) == "from-openai"
    monkeypatch.setenv("COD_LLM_API_KEY", "from-cod")
    assert resolve_api_key(None, None) == "from-cod"
    assert resolve_api_key("given", None) == "given"
    assert endpoint_name("https://user:pw@example.org:8443/v1/?key=x") == "https://example.org:8443/v1"


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_is_bounded(teacher, tmp_path, concurrency):
    def slow(body):
        reply = negate(body)
        reply.delay_s = 0.15
        return reply

    with FakeOpenAI(slow) as server:
        results = proposer(server.base_url, tmp_path, concurrency=concurrency).propose(examples(), teacher)
    assert server.max_in_flight == concurrency and all(cf.flipped for cf in results)


def test_progress_is_reported_for_every_example(teacher, tmp_path):
    seen = []
    with FakeOpenAI(negate) as server:
        proposer(server.base_url, tmp_path).propose(examples(), teacher, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, len(TEXTS)) for i in range(1, len(TEXTS) + 1)]


def test_rerun_costs_no_tokens_and_interrupted_run_resumes(teacher, tmp_path):
    with FakeOpenAI(negate) as server:
        done = []
        first = proposer(server.base_url, tmp_path, concurrency=1).propose(
            examples(), teacher, on_progress=lambda d, t: done.append(d), stop=lambda: len(done) >= 2
        )
        assert server.count == 2
        assert [bool(cf.extra.get("stopped")) for cf in first] == [False, False] + [True] * 4
        assert all(cf.error.startswith("Stopped") for cf in first[2:])

        resumed = proposer(server.base_url, tmp_path, concurrency=1).propose(examples(), teacher)
        assert server.count == len(TEXTS)  # only the four missing examples were asked
        assert all(cf.flipped for cf in resumed)
        assert [cf.tokens > 0 for cf in resumed] == [False, False] + [True] * 4

        again = proposer(server.base_url, tmp_path).propose(examples(), teacher)
        assert server.count == len(TEXTS)  # a full re-run makes zero requests
    assert [cf.counterfactual for cf in again] == [cf.counterfactual for cf in resumed]
    assert all(cf.tokens == 0 and cf.extra["cached_replies"] == 1 for cf in again)

    # Settings that change the reply are part of the key: another temperature asks again.
    with FakeOpenAI(negate) as server:
        proposer(server.base_url, tmp_path, temperature=0.1).propose(examples([GOOD]), teacher)
        assert server.count == 1


def test_cache_can_be_turned_off(teacher, tmp_path):
    with FakeOpenAI(negate) as server:
        config = LLMConfig(base_url=server.base_url, model="m", retry_delay_s=0.01)
        llm = LLMProposer(config, cache_dir=False)
        llm.propose(examples([GOOD]), teacher)
        llm.propose(examples([GOOD]), teacher)
        assert server.count == 2 and llm.cache is None


def test_targets_are_checked(teacher, tmp_path):
    with FakeOpenAI(negate) as server:
        llm = proposer(server.base_url, tmp_path)
        [cf] = llm.propose(examples([GOOD]), teacher, target="positive")
        assert "already puts this text in 'positive'" in cf.error and server.count == 0
        with pytest.raises(ConfigError, match="not one of the teacher's labels"):
            llm.propose(examples([GOOD]), teacher, target="neutral")
        with pytest.raises(ConfigError, match="2 targets for 1 examples"):
            llm.propose(examples([GOOD]), teacher, target=[0, 0])
        with pytest.raises(ConfigError, match="Example 0 has no text"):
            llm.propose([Example("  ", 0)], teacher)
        [cf] = llm.propose([GOOD], teacher, n=1)  # plain strings: the label is the teacher's
        assert cf.label == 1 and cf.flipped
        assert re.search(r"Give 1 different rewrites", server.requests[0].body["messages"][1]["content"])


@pytest.mark.parametrize(
    "reply, candidates",
    [
        ('["the film is bad", "the film is dull"]', ["the film is bad", "the film is dull"]),
        (
            'Here are 2 rewrites:\n1. The film is bad.\n2) "the film is awful" (changed good)',
            ["The film is bad.", "the film is awful"],
        ),
        ("**Rewrite 1:** 'the film is bad'", ["the film is bad"]),
        ('[{"counterfactual": "the film is bad"}, "the film is bad"]', ["the film is bad"]),
        ('<think>\nthe user wants negative\n</think>\n["the film is bad"]', ["the film is bad"]),
        ("I changed the word good to bad, so that the sentiment of the whole review is now negative.", []),
        ("text-heavy film is good", ["text-heavy film is good"]),  # a hyphen after a label-like word is text
    ],
)
def test_parse_candidates_table(reply, candidates):
    assert parse_candidates(reply, GOOD).candidates == candidates


@pytest.mark.parametrize(
    "task, names, template",
    [
        ("auto", ["rotten", "fresh"], "sentiment"),
        ("auto", ["negative", "neutral", "positive"], "sentiment"),
        ("auto", ["unacceptable", "acceptable"], "grammaticality"),
        ("auto", ["LABEL_0", "LABEL_1"], "generic"),
        ("auto", ["sports", "politics", "tech"], "multiclass"),
        ("generic", ["negative", "positive"], "generic"),
    ],
)
def test_templates_follow_the_label_names(task, names, template):
    assert choose_template(task, names) == template
    user = build_messages(template, 'a "quoted" text', names, 0, 1, 3, "Reviews of phones.")[1]["content"]
    assert user.startswith("Task: Reviews of phones.") and 'Text: "a \\"quoted\\" text"' in user
    assert "JSON list of 3 strings" in user


def test_sentiment_prompt_explains_dataset_label_names():
    user = build_messages("sentiment", GOOD, ["rotten", "fresh"], 1, 0, 2)[1]["content"]
    assert 'from positive (labelled "fresh") to negative (labelled "rotten")' in user
