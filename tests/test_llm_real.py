r"""The LLM proposer against a real OpenAI-compatible server, when one is given (skipped otherwise).

Run with, for example, llama.cpp's server and the packaged Qwen2.5 0.5B GGUF (see /work/shared/OFFLINE.md):
    COD_TEST_LLM_BASE_URL=http://127.0.0.1:8080/v1 COD_TEST_LLM_MODEL=qwen \
        .venv/bin/python -m pytest tests/test_llm_real.py
A small model flips the teacher far less often than a hosted one, so this checks the path end to end
(real replies parsed, scored, cached), not a flip rate.
"""

import os

import pytest

from cod.config import LLMConfig
from cod.counterfactuals.llm import LLMProposer
from cod.data.readers import Example
from tests.word_teacher import word_teacher

BASE_URL = os.environ.get("COD_TEST_LLM_BASE_URL")
pytestmark = pytest.mark.skipif(not BASE_URL, reason="set COD_TEST_LLM_BASE_URL to test against a real LLM server")

TEXTS = ["the film is good", "the story was great and fun", "a brilliant and moving film", "the acting is good"]


def test_real_llm_end_to_end(tmp_path):
    config = LLMConfig(
        base_url=BASE_URL,
        model=os.environ.get("COD_TEST_LLM_MODEL", "default"),
        task="sentiment",
        candidates=3,
        rounds=2,
        concurrency=1,
        temperature=0.2,
        timeout_s=120.0,
        max_retries=1,
    )
    teacher = word_teacher("sentiment")
    llm = LLMProposer(config, cache_dir=tmp_path / "cache")
    results = llm.propose([Example(t, 1) for t in TEXTS], teacher)
    assert [cf.text for cf in results] == TEXTS
    for cf in results:
        assert cf.prompt_version == "sentiment-v1" and cf.model == config.model and cf.target == 0
        assert cf.error or cf.flipped, cf
        assert cf.counterfactual == "" or len(cf.counterfactual_teacher_probs) == 2
    assert all(cf.attempts > 0 or "No usable rewrite" in cf.error for cf in results), [cf.error for cf in results]
    assert sum(cf.tokens for cf in results) > 0
    print(
        "flipped",
        sum(cf.flipped for cf in results),
        "of",
        len(results),
        [(cf.counterfactual, cf.words_changed, cf.error[:60]) for cf in results],
    )

    again = LLMProposer(config, cache_dir=tmp_path / "cache").propose([Example(t, 1) for t in TEXTS], teacher)
    assert [cf.counterfactual for cf in again] == [cf.counterfactual for cf in results]
    assert all(cf.tokens == 0 for cf in again)
