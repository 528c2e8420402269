"""Helpers shared by command modules (the leading underscore keeps this module out of command discovery)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cod.errors import ConfigError


def parse_set(items: Iterable[str], example: str = "--set warmup_ratio=0.06") -> dict[str, Any]:
    """`--set KEY=VALUE` flags as a dict; a value is read as JSON when it parses, else kept as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE, e.g. {example}.")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
