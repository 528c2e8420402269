"""The embedded LLM as an offline LLM proposer: the API proposers' prompts, parser, feedback and cache, no endpoint."""

import pytest

from cod.config import LLMConfig
from cod.counterfactuals.llm import LLMProposer
from cod.data.readers import Example
from tests.word_teacher import word_teacher

TEXTS = ["the film was good .", "the plot was boring ."]


@pytest.fixture(scope="module")
def teacher():
    return word_teacher("sentiment")


def _proposer(tmp_path, **kw):
    # Greedy (temperature 0), one short round: a few seconds per batch on 2 cores.
    config = LLMConfig(model="demo-llm", base_url=None, temperature=0.0, rounds=1, candidates=2, max_tokens=40, **kw)
    return LLMProposer(config, cache_dir=tmp_path)


def test_demo_llm_proposes_teacher_checked_counterfactuals_offline(teacher, tmp_path, monkeypatch):
    for name in ("COD_LLM_API_KEY", "OPENAI_API_KEY", "COD_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)  # no key, no endpoint: nothing to reach
    proposer = _proposer(tmp_path)
    assert proposer.endpoint == "local:demo-llm" and proposer._client is None
    cfs = proposer.propose([Example(t, 1 - i) for i, t in enumerate(TEXTS)], teacher)
    assert [cf.text for cf in cfs] == TEXTS and proposer._local.batches >= 1
    for cf in cfs:
        assert cf.proposer == "llm" and cf.model == "demo-llm" and cf.tokens > 0
        assert cf.extra["requests"] == 1 and cf.prompt_version == "sentiment-v1-local-v1"  # one plain rewrite
        if cf.counterfactual:  # the verdict is the teacher's own on the text
            assert cf.counterfactual_teacher_probs == pytest.approx(
                teacher.predict_proba([cf.counterfactual])[0].tolist()
            )
            assert cf.flipped == (cf.teacher_label == cf.target) and cf.fluency is not None
    # A re-run is answered from the cache: no generation at all.
    again = _proposer(tmp_path)
    assert [c.counterfactual for c in again.propose([Example(t, 1 - i) for i, t in enumerate(TEXTS)], teacher)] == [
        c.counterfactual for c in cfs
    ]
    assert again._local.batches == 0


def test_small_models_get_worked_examples_one_plain_rewrite_and_few_new_tokens(tmp_path):
    from cod.counterfactuals import prompts as P
    from cod.counterfactuals.llm import _first_line

    messages = P.build_local_messages("sentiment", "the film was good .", ["negative", "positive"], 1, 0)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"].endswith("Text: the film was good .") and "JSON" not in messages[-1]["content"]
    reply = "the film was bad .\nExplanation: I changed good to bad."
    assert P.parse_candidates(_first_line(reply), "the film was good .").candidates == ["the film was bad ."]
    chat = _proposer(tmp_path)._local
    limit = chat.reply_tokens("the film was good .")
    assert 12 < limit < 30  # the text's length and a half, plus a little; not the 40 max_tokens allows
    rendered = chat.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt = chat.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    _, tokens = chat.complete(messages, limit=3)
    assert 0 < tokens - len(prompt) <= 3  # the cap reached generate


def test_concurrent_requests_share_one_batch(teacher, tmp_path):
    proposer = _proposer(tmp_path, concurrency=2)
    proposer._local.gather_s = 2.0  # the second worker joins well within this, even on a busy machine
    proposer.propose([Example(t, 1 - i) for i, t in enumerate(TEXTS)], teacher)
    assert proposer._local.batches == 1  # both examples' first requests went through one generate


def test_a_base_url_keeps_demo_llm_on_the_endpoint():
    proposer = LLMProposer(LLMConfig(model="demo-llm", base_url="http://127.0.0.1:9/v1"), api_key="k", cache_dir=False)
    assert proposer._local is None and proposer.endpoint == "http://127.0.0.1:9/v1"
    proposer.close()


def test_the_apps_llm_choice_runs_the_embedded_llm_with_no_endpoint(monkeypatch):
    from components import counterfactuals as C
    from components.state import PageState

    for name in ("COD_LLM_API_KEY", "OPENAI_API_KEY", "COD_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    proposer = C.make_proposer(PageState(), C.LLM)
    assert proposer.config.model == "demo-llm" and proposer._local is not None
    keyed = C.make_proposer(PageState(), C.LLM, api_key="sk-test")
    assert keyed._local is None and keyed.config.model != "demo-llm"
    keyed.close()
