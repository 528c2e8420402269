"""Helpers shared by command modules (the leading underscore keeps this module out of command discovery)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Collection, Iterable
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


def _flag_type(annotation: Any) -> Any:
    """The argparse type of a field: bool, int, float or str (tuples are comma-separated text); None: no flag."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]  # X | None -> X
    if annotation in (bool, int, float, str):
        return annotation
    if typing.get_origin(annotation) is tuple:
        return str  # "8,16,32": the config's __post_init__ splits it
    return None  # dicts and other structures: --set KEY=JSON


def _default_text(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING:
        return ""  # a default_factory (environment, empty dict): the help says where it comes from
    value = f.default
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    return f" [{value!r}]" if value == "" else f" [{value}]"


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_cls: type,
    skip: Collection[str] = (),
    required: Collection[str] = (),
    title: str | None = None,
) -> None:
    """One `--field-name` flag per field of a config dataclass, with the help and choices of its metadata.

    Flags default to None (not given), so only what the user typed overrides the config's own defaults; booleans
    get `--name/--no-name`. Fields in `skip` and fields without a plain type (dicts) get no flag (use --set)."""
    group = parser.add_argument_group(title or f"{config_cls.__name__} settings")
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        kind = _flag_type(hints[f.name])
        if f.name in skip or kind is None:
            continue
        names = [f"--{f.name.replace('_', '-')}", *f.metadata.get("aliases", ())]
        text = (f.metadata.get("help", "") + _default_text(f)).replace("%", "%%")  # argparse %-formats help
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=kind, choices=f.metadata.get("choices"))
        if f.name in required:
            kwargs["required"] = True
        group.add_argument(*names, **kwargs)


def config_overrides(args: argparse.Namespace, config_cls: type, skip: Collection[str] = ()) -> dict[str, Any]:
    """The settings of `config_cls` given on the command line by `add_config_flags` (those left out are absent)."""
    out = {}
    for f in dataclasses.fields(config_cls):
        value = getattr(args, f.name, None)
        if f.name not in skip and value is not None:
            out[f.name] = value
    return out
