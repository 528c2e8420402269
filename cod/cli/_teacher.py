"""The teacher flags every command shares (kind, label words, prompt, calibration, API budget) and loading from them.

`--teacher` names a classifier (Hub id, folder, `demo`), a causal LM (`demo-llm`, a folder, a `.gguf` file, or any
name with `--teacher-kind causal-lm`) or a chat model behind an OpenAI-compatible endpoint (`api:MODEL`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

TEACHER_HELP = "teacher: 'demo', a classifier's Hub id or folder, 'demo-llm', a causal LM, or api:MODEL [demo]"


def add_teacher_args(parser: argparse.ArgumentParser, base_url: bool = True, labels: bool = False) -> None:
    """Add the LLM-teacher flags (`base_url` False where the command already has --llm-base-url)."""
    from cod.config import TEACHER_KINDS as KINDS  # not cod.modeling: building the parser must not import torch

    g = parser.add_argument_group("LLM teachers (demo-llm, causal LMs, api:MODEL)")
    g.add_argument(
        "--teacher-kind", default="auto", choices=KINDS, help="what --teacher is (auto: from the name) [auto]"
    )
    if labels:
        g.add_argument(
            "--labels", default=None, help="comma-separated label names of an LLM teacher [negative,positive]"
        )
    g.add_argument(
        "--label-words",
        action="append",
        default=[],
        metavar="LABEL=WORD[,WORD]",
        help="words that mean a label in the answer (default: its name); repeatable",
    )
    g.add_argument("--prompt-template", default=None, help="prompt with {text} (and optionally {labels}, {choices})")
    g.add_argument("--system-prompt", default="", help="a system message before the prompt")
    g.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="contextual calibration on content-free inputs (default: off; demo-llm*: their validated choice)",
    )
    g.add_argument(
        "--chat-template",
        default="auto",
        choices=["auto", "on", "off"],
        help="causal LMs: wrap the prompt in the model's chat template (auto: when it has one) [auto]",
    )
    g.add_argument(
        "--teacher-mode",
        default="auto",
        choices=["auto", "logprobs", "votes"],
        help="API teachers: logprobs, votes (sampled answers), or auto (votes when logprobs are refused)",
    )
    g.add_argument("--teacher-samples", type=int, default=5, help="sampled answers per text in votes mode [5]")
    g.add_argument("--teacher-max-requests", type=int, default=2000, help="API request budget; 0 no limit [2000]")
    g.add_argument("--teacher-max-tokens", type=int, default=1_000_000, help="API token budget; 0 no limit [1000000]")
    g.add_argument("--teacher-concurrency", type=int, default=4, help="API requests in flight at once [4]")
    if base_url:
        g.add_argument(
            "--llm-base-url",
            default=None,
            metavar="URL",
            help="OpenAI-compatible endpoint for api:MODEL (default COD_LLM_BASE_URL or OpenAI)",
        )


def teacher_options(args: argparse.Namespace):
    """The `LLMTeacherOptions` the flags ask for."""
    from cod.modeling.teachers.api import APISettings
    from cod.modeling.teachers.load import LLMTeacherOptions
    from cod.modeling.teachers.prompt import parse_label_words

    api = APISettings(
        base_url=getattr(args, "llm_base_url", None),
        mode=args.teacher_mode,
        samples=args.teacher_samples,
        max_requests=args.teacher_max_requests,
        max_tokens=args.teacher_max_tokens,
        concurrency=args.teacher_concurrency,
    )
    return LLMTeacherOptions.make(
        parse_label_words(args.label_words),
        api=api,
        template=args.prompt_template,
        system=args.system_prompt,
        calibrate=args.calibrate,
        chat_template=args.chat_template,
    )


def load_teacher_from_args(args: argparse.Namespace, label_names: Sequence[str] | None = None, **kw):
    """`load_teacher(args.teacher, ...)` with the LLM-teacher flags; `label_names` come from the data (or --labels)."""
    from cod.modeling.loading import load_teacher

    labels = getattr(args, "labels", None)
    if label_names is None and labels:
        label_names = [n.strip() for n in labels.split(",") if n.strip()]
    return load_teacher(
        args.teacher, kind=args.teacher_kind, label_names=label_names, options=teacher_options(args), **kw
    )


def say_estimate(teacher, texts: Sequence[str]) -> None:
    """Print, before an API teacher scores `texts`, what it would cost (stderr; nothing for local teachers)."""
    estimate = getattr(teacher, "estimate", None)
    if estimate is None:
        return
    e = estimate(texts)
    s = teacher.settings
    print(
        f"{teacher.name} at {teacher.endpoint}: {e['texts']} texts, {e['cached']} cached; about {e['requests']} "
        f"request(s) and {e['tokens']:,} tokens (budget {s.max_requests or 'unlimited'} requests, "
        f"{s.max_tokens or 'unlimited'} tokens)",
        file=sys.stderr,
    )
