"""Versioned prompt templates for the LLM proposer, the feedback turn, and a forgiving reply parser.

A template's version goes into every cached reply's key and every `Counterfactual.prompt_version`, so change
the version string whenever a template's wording changes (old cache entries then stop matching).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cod.counterfactuals import edits as E

VERSIONS = {
    "sentiment": "sentiment-v1",
    "grammaticality": "grammaticality-v1",
    "generic": "generic-v1",
    "multiclass": "multiclass-v1",
}

SYSTEM = (
    "You write counterfactual examples for a text classifier: minimal edits of a text that change its class. "
    "Change as few words as possible and keep everything else (the other words, punctuation, casing, spacing) "
    "exactly as it is. Reply with only a JSON list of strings and no explanation."
)

# Label names as datasets spell them -> the words an LLM understands for that class. Bare indices and LABEL_n
# are left out on purpose: their meaning differs between datasets, so they get the generic template.
_SENTIMENT = {
    "negative": {"negative", "neg", "rotten", "bad"},
    "positive": {"positive", "pos", "fresh", "good"},
    "neutral": {"neutral", "neu", "mixed"},
}
_GRAMMAR = {
    "grammatically unacceptable (ungrammatical) English": {"unacceptable", "ungrammatical", "incorrect"},
    "grammatically acceptable English": {"acceptable", "grammatical", "correct"},
}


def _meaning(name: str, table: dict[str, set[str]]) -> str | None:
    key = name.strip().lower()
    return next((meaning for meaning, names in table.items() if key in names), None)


def choose_template(task: str, label_names: Sequence[str]) -> str:
    """The template for a task ('auto' guesses sentiment or grammaticality from the label names)."""
    names = list(label_names)
    if task == "auto":
        if all(_meaning(n, _SENTIMENT) for n in names):
            task = "sentiment"
        elif len(names) == 2 and {_meaning(n, _GRAMMAR) for n in names} == set(_GRAMMAR):
            task = "grammaticality"
        else:
            task = "generic"
    if task == "generic" and len(names) > 2:
        return "multiclass"
    return task


def _describe(name: str, template: str) -> str:
    """A label as the prompt names it, e.g. 'positive' or 'negative (labelled "rotten")'."""
    table = _SENTIMENT if template == "sentiment" else _GRAMMAR if template == "grammaticality" else {}
    meaning = _meaning(name, table)
    if meaning is None or meaning == name.lower():
        return f'"{name}"' if template in ("generic", "multiclass") else name
    return f'{meaning} (labelled "{name}")'


def build_messages(
    template: str,
    text: str,
    label_names: Sequence[str],
    source: int,
    target: int,
    n: int,
    task_description: str = "",
) -> list[dict[str, str]]:
    """System and user messages asking for `n` minimal rewrites of `text` from class `source` to `target`."""
    names = list(label_names)
    src, tgt = _describe(names[source], template), _describe(names[target], template)
    quoted = json.dumps(text, ensure_ascii=False)
    context = f"Task: {task_description.strip()}\n" if task_description.strip() else ""
    if template == "sentiment":
        ask = (
            f"Change the sentiment of the following text from {src} to {tgt} with minimal changes: replace, insert "
            f"or delete as few words as possible and keep the rest of the text exactly as it is."
        )
    elif template == "grammaticality":
        ask = (
            f"The following sentence is {src}. Edit it with minimal changes (as few words as possible) so that it "
            f"becomes {tgt}, keeping its meaning and the rest of its words."
        )
    elif template == "multiclass":
        classes = ", ".join(f'"{n}"' for n in names)
        ask = (
            f"A classifier sorts texts into the classes {classes}; it puts the following text in {src}. Edit the "
            f"text with minimal changes so that it clearly belongs to {tgt} (not to any other class): replace, "
            f"insert or delete as few words as possible and keep the rest exactly as it is."
        )
    else:
        classes = " and ".join(f'"{n}"' for n in names)
        ask = (
            f"A classifier sorts texts into the classes {classes}; it puts the following text in {src}. Edit the "
            f"text with minimal changes so that it belongs to {tgt} instead: replace, insert or delete as few "
            f"words as possible and keep the rest exactly as it is."
        )
    user = f"{context}{ask}\nGive {n} different rewrites, as a JSON list of {n} strings.\n\nText: {quoted}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# --- small local models ----------------------------------------------------------------------------------------
# A 135M-0.5B model on this machine rarely writes a JSON list of several minimal rewrites (it answers with broken
# JSON or the input unchanged). It is asked for one rewrite as plain text instead, after two worked examples given
# as earlier turns of the chat, which small instruction-tuned models copy far more reliably than instructions.
LOCAL_VERSION = "local-v1"  # appended to the template's version in cache keys and records
_LOCAL_EXAMPLES = {
    "sentiment": (
        ("The acting is superb and the story moves quickly.", "The acting is weak and the story moves slowly."),
        ("A dull, lifeless script with no surprises.", "A sharp, lively script with many surprises."),
    ),
}


def _local_ask(template: str, src: str, tgt: str) -> str:
    if template == "sentiment":
        return f"Change as few words as possible to make this text {tgt} instead of {src}."
    return f"Change as few words as possible so that this text belongs to {tgt} instead of {src}."


def build_local_messages(
    template: str, text: str, label_names: Sequence[str], source: int, target: int
) -> list[dict[str, str]]:
    """Messages asking a small local model for one minimal rewrite of `text` towards `target`, as plain text."""
    names = list(label_names)
    src, tgt = _describe(names[source], template), _describe(names[target], template)
    reply_rule = " Reply with the new text only."
    messages = [{"role": "system", "content": "You edit texts minimally. Reply with the edited text only."}]
    for k, (before, after) in enumerate(_LOCAL_EXAMPLES.get(template, ())):
        # The examples go one way and then the other (positive -> negative, negative -> positive).
        a, b = ("positive", "negative") if k % 2 == 0 else ("negative", "positive")
        messages.append({"role": "user", "content": f"{_local_ask(template, a, b)}{reply_rule}\nText: {before}"})
        messages.append({"role": "assistant", "content": after})
    messages.append({"role": "user", "content": f"{_local_ask(template, src, tgt)}{reply_rule}\nText: {text}"})
    return messages


def local_feedback(
    probs: Sequence[float] | None, label_names: Sequence[str], target: int, template: str
) -> dict[str, str]:
    """The short user turn telling a small local model its rewrite did not reach the target (None: no rewrite)."""
    names = list(label_names)
    tgt = _describe(names[target], template)
    if probs is None:
        head = "That was not a rewrite of the text."
    else:
        current = max(range(len(probs)), key=probs.__getitem__)
        head = f"The classifier still reads that as {names[current]} ({probs[current]:.2f})."
    ask = f"Change another word or two of the original text to make it {tgt}. Reply with the new text only."
    return {"role": "user", "content": f"{head} {ask}"}


def feedback_message(
    scored: Sequence[tuple[str, Sequence[float]]],
    label_names: Sequence[str],
    target: int,
    n: int,
    problem: str = "",
) -> dict[str, str]:
    """The user turn that reports the teacher's verdict on the last rewrites and asks for `n` new ones."""
    names = list(label_names)
    if scored:
        lines = [
            f"{i}. {json.dumps(text, ensure_ascii=False)} -> "
            + ", ".join(f"{names[j]} {p:.2f}" for j, p in sorted(enumerate(probs), key=lambda jp: -jp[1]))
            for i, (text, probs) in enumerate(scored, 1)
        ]
        head = f'The classifier checked your rewrites; none of them is classified as "{names[target]}":\n' + "\n".join(
            lines
        )
        ask = (
            f"Write {n} new rewrites of the original text, each still a minimal edit, that the classifier will put "
            f'in "{names[target]}": change the words that carry the current class more decisively.'
        )
    else:
        head = f"Your reply contained no usable rewrite ({problem or 'nothing could be read from it'})."
        ask = (
            f"Write {n} rewrites of the original text, each a minimal edit that changes its class to "
            f'"{names[target]}".'
        )
    return {"role": "user", "content": f"{head}\n{ask}\nReply with only a JSON list of {n} strings."}


# --- parsing replies -------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[\w-]*\s*$", re.M)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)  # reasoning models (Qwen3, R1) think aloud first
_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,2}[.):]|[-•]|\*(?!\*)|#{1,6})\s+")
_LABEL = re.compile(
    r"^\s*(?:\*\*|__)?(?:counterfactual|rewrite|rewritten|revised|edited|modified|new|changed|output|answer|"
    r"option|candidate|version|sentence|text|review|result)(?:\s+(?:text|sentence|version|review))?\s*#?\d*"
    r"\s*(?:\*\*|__)?(?:\s*[:=]|\s+[-–])\s*(?:\*\*|__)?\s*",
    re.I,
)
_PREAMBLE = re.compile(
    r"^\s*(?:here(?:'s| is| are)|sure|certainly|of course|okay|ok[,.!]|absolutely|below|the following|these are|"
    r"i(?:'ve| have) (?:changed|made|rewritten|edited)|note\b|explanation\b)",
    re.I,
)
_REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i am (?:unable|not able)|i'?m (?:unable|not able)|"
    r"i won'?t|as an ai\b|unfortunately,? i)",
    re.I,
)
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`"), ("*", "*"), ("_", "_")]
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')  # complete JSON string literals, even in a broken list
_TEXT_KEYS = ("text", "rewrite", "counterfactual", "sentence", "edited", "revised", "output")
# A "rewrite" sharing less than this with an original of 4+ words is an explanation or a new text, not an edit.
MAX_EDIT_DISTANCE = 0.75


@dataclass
class Parsed:
    """Candidates read from one reply; `problem` says why there are none (empty, refusal, ...)."""

    candidates: list[str]
    problem: str = ""


def _strings(value) -> list[str]:
    """Strings from decoded JSON: a list of strings or of {"text": ...}, a {"rewrites": [...]}, or one string."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), None)
                text = text or next((v for v in item.values() if isinstance(v, str)), None)
                if text:
                    out.append(text)
        return out
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, list) and _strings(v):
                return _strings(v)
        return _strings([value])
    return []


def _from_json(body: str) -> list[str] | None:
    """Candidates if the reply is (or contains) JSON; None when it is not JSON at all."""
    for start, end in (("[", "]"), ("{", "}")):
        i, j = body.find(start), body.rfind(end)
        if i == -1 or j <= i:
            continue
        for chunk in (body, body[i : j + 1]):
            try:
                return _strings(json.loads(chunk))
            except ValueError:
                continue
    stripped = body.lstrip()
    if stripped[:1] in "[{":
        # Broken JSON (cut off by max_tokens, a missing comma): keep every complete string literal in it.
        found = []
        for m in _STRING.finditer(stripped):
            try:
                found.append(json.loads(f'"{m.group(1)}"'))
            except ValueError:
                continue
        return [s for s in found if s.lower() not in _TEXT_KEYS and s.lower() not in {"rewrites", "candidates"}]
    return None


def clean(candidate: str) -> str:
    """A candidate without numbering, a 'Counterfactual:' label, wrapping quotes or surrounding space."""
    text = " ".join(candidate.split())
    for _ in range(3):  # labels and quotes can nest: **Rewrite 1:** "..."
        before = text
        text = _NUMBERING.sub("", text, count=1) if _NUMBERING.match(text) and not text[:1].isalpha() else text
        text = _LABEL.sub("", text, count=1).strip()
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[len(left) : len(text) - len(right)].strip()
        if text == before:
            break
    return text


def _from_lines(body: str) -> tuple[list[str], bool]:
    """Candidates from a plain-text reply (numbered lines, quotes, labels); also says whether it refused."""
    out, refused = [], False
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        if _REFUSAL.match(line):
            refused = True
            continue
        label_only = _LABEL.sub("", _NUMBERING.sub("", line, count=1)).strip() == ""
        if label_only or (line.endswith(":") and not line.startswith(('"', "“"))):
            continue
        if _PREAMBLE.match(line):
            # "Sure! Here is the rewrite: the film is bad" keeps what follows the colon.
            head, colon, rest = line.partition(":")
            if not (colon and rest.strip()):
                continue
            line = rest.strip()
        if line.startswith("(") and line.endswith(")"):  # "(changed 'good' to 'bad')"
            continue
        # "1. "the film is bad" (changed good -> bad)": keep the quoted part.
        quoted = re.match(r'^\W*?["“](.+?)["”]\s*(?:\(.*\))?\s*$', _NUMBERING.sub("", line, count=1))
        out.append(quoted.group(1) if quoted else line)
    return out, refused


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def parse_candidates(reply: str | None, original: str) -> Parsed:
    """Rewrites read from an LLM reply: a JSON list first, then numbered or quoted lines; never raises."""
    body = _FENCE.sub("", _THINK.sub("", reply or "")).strip()
    if not body:
        return Parsed([], "an empty reply")
    found = _from_json(body)
    refused = False
    if found is None:
        found, refused = _from_lines(body)
    cleaned = [clean(c) for c in found]
    cleaned = [c for c in cleaned if c and not _REFUSAL.match(c)]
    unchanged = [c for c in cleaned if _same(c, original)]
    cleaned = [c for c in cleaned if not _same(c, original)]
    n_words = len(E.words(original))
    far = [c for c in cleaned if n_words >= 4 and E.edit_distance(original, c) > MAX_EDIT_DISTANCE]
    kept = list(dict.fromkeys(c for c in cleaned if c not in far))
    if kept:
        return Parsed(kept)
    snippet = json.dumps(body[:80] + ("..." if len(body) > 80 else ""), ensure_ascii=False)
    if refused or _REFUSAL.match(body):
        return Parsed([], f"the model refused: {snippet}")
    if unchanged:
        return Parsed([], "the reply repeated the input unchanged")
    if far:
        return Parsed([], f"the rewrites were not minimal edits of the input: {snippet}")
    return Parsed([], f"no rewrite could be read from the reply: {snippet}")
