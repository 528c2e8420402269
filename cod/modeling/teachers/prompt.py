"""The prompt an LLM teacher answers and the label words it is scored on (shared by local and API teachers).

The default prompt asks for one word, the label's name; `label_words` lets a label answer to other words too
("positive": good, great). Every word counts in its case and leading-space variants ("positive", " Positive", ...),
since a model may answer in any of them. `version` is part of every cache key: a changed prompt is scored again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cod.errors import ConfigError

DEFAULT_TEMPLATE = (
    "Classify the text into exactly one of these classes: {labels}.\n\n"
    "Text: {text}\n\n"
    "Answer with one word: {choices}."
)
CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. (2021): inputs that carry no content, for calibration


def default_words(label: str) -> tuple[str, ...]:
    """The words a label answers to by default: its name, with underscores and hyphens read as spaces."""
    word = re.sub(r"[_\-]+", " ", str(label)).strip()
    return (word or str(label),)


def variants(word: str) -> list[str]:
    """A word in the forms a model may answer it: as written, lower, Capitalised, UPPER, each with a leading space."""
    forms = dict.fromkeys([word, word.lower(), word[:1].upper() + word[1:].lower(), word.upper()])
    return [v for f in forms for v in (f, " " + f)]


@dataclass(frozen=True)
class Prompt:
    """A prompt template (with `{text}`, optionally `{labels}` and `{choices}`), a system line and label words."""

    label_names: tuple[str, ...]
    label_words: tuple[tuple[str, ...], ...]  # per label, in label order
    template: str = DEFAULT_TEMPLATE
    system: str = ""

    def __post_init__(self) -> None:
        if "{text}" not in self.template:
            raise ConfigError(f"The prompt template must contain {{text}} where the text goes, got {self.template!r}.")
        if len(self.label_words) != len(self.label_names):
            raise ConfigError(f"label_words has {len(self.label_words)} entries for {len(self.label_names)} labels.")
        for name, words in zip(self.label_names, self.label_words):
            if not words or not all(w.strip() for w in words):
                raise ConfigError(
                    f"Label {name!r} needs at least one non-empty word to answer with, got {list(words)}."
                )

    @classmethod
    def build(
        cls,
        label_names: Sequence[str],
        label_words: Mapping[str, Sequence[str] | str] | None = None,
        template: str | None = None,
        system: str = "",
    ) -> Prompt:
        """A prompt for these labels; `label_words` maps a label (by name) to its words (others: their name)."""
        names = tuple(str(n) for n in label_names)
        if len(names) < 2:
            raise ConfigError(f"An LLM teacher needs at least two label names, got {list(names)}: pass --labels.")
        given = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in (label_words or {}).items()}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f"label_words names {unknown}, which are not labels; the labels are {list(names)}.")
        words = tuple(tuple(w.strip() for w in given.get(n, default_words(n))) for n in names)
        return cls(names, words, template or DEFAULT_TEMPLATE, system or "")

    @property
    def version(self) -> str:
        """A short digest of everything that changes the model's answer (part of cache keys)."""
        text = repr((self.template, self.system, self.label_names, self.label_words))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def user_message(self, text: str) -> str:
        """The prompt for one text."""
        first = [w[0] for w in self.label_words]
        choices = ", ".join(first[:-1]) + f" or {first[-1]}" if len(first) > 1 else first[0]
        return self.template.format(text=text, labels=", ".join(self.label_names), choices=choices)

    def messages(self, text: str) -> list[dict[str, str]]:
        """Chat messages for one text: the system line (when set) and the user prompt."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": "user", "content": self.user_message(text)}]

    def label_of(self, answer: str) -> int | None:
        """The label a free-text answer names (its first word matched against every label word), or None."""
        head = answer.casefold().strip(" \t\n.:!\"'*`")
        matches = {i for i, words in enumerate(self.label_words) for w in words if head.startswith(w.casefold())}
        return matches.pop() if len(matches) == 1 else None

    def to_dict(self) -> dict:
        """JSON-friendly form, saved with results."""
        return {
            "template": self.template,
            "system": self.system,
            "label_words": {n: list(w) for n, w in zip(self.label_names, self.label_words)},
            "version": self.version,
        }


def parse_label_words(items: Sequence[str]) -> dict[str, list[str]]:
    """`LABEL=word1,word2` flags as {label: [words]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        label, sep, words = item.partition("=")
        if not sep or not label.strip() or not words.strip():
            raise ConfigError(f"--label-words {item!r} is not LABEL=WORD[,WORD...], e.g. positive=positive,good.")
        out[label.strip()] = [w.strip() for w in words.split(",") if w.strip()]
    return out
