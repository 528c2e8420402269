"""The default proposer is chosen once, in `cod.config.DEFAULT_PROPOSER`: the app's proposer choice, `cod generate`
and sweeps all start from it."""

from __future__ import annotations

from cod.config import DEFAULT_PROPOSER, SweepConfig
from cod.counterfactuals import PROPOSERS
from tests.test_app_handlers import models, services  # noqa: F401  (fixtures)


def test_the_cli_and_sweeps_start_from_the_library_default():
    from cod.cli import build_parser

    args = build_parser().parse_args(["generate", "--data", "reviews.csv", "--out", "cfs.jsonl"])
    assert DEFAULT_PROPOSER in PROPOSERS
    assert args.proposer == DEFAULT_PROPOSER == SweepConfig().proposer


def test_the_app_offers_the_library_default_first(services):  # noqa: F811
    import gradio as gr

    from app import build_app
    from components.counterfactuals import LLM, PROPOSER_CHOICES

    blocks = build_app(services)
    radios = [b for b in blocks.blocks.values() if isinstance(b, gr.Radio) and b.elem_id == "proposer"]
    assert len(radios) == 1 and radios[0].value == PROPOSER_CHOICES[DEFAULT_PROPOSER]
    assert set(PROPOSER_CHOICES) == set(PROPOSERS) and PROPOSER_CHOICES["llm"] == LLM
