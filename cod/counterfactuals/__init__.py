"""Counterfactual proposers behind one interface (see `base.Proposer`): `propose(examples, teacher, proposer=...)`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cod.config import DEFAULT_PROPOSER
from cod.counterfactuals.base import Counterfactual, Proposer, default_target
from cod.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from cod.data.readers import Example
    from cod.modeling.scoring import Teacher

PROPOSERS = ("lexical", "llm")

__all__ = ["DEFAULT_PROPOSER", "PROPOSERS", "Counterfactual", "Proposer", "default_target", "make_proposer", "propose"]


def make_proposer(proposer: str = DEFAULT_PROPOSER, config=None, guide=None, **kw: Any) -> Proposer:
    """A proposer by name: 'lexical' takes `few_shot`, `cache_dir`; 'llm' takes `api_key`, `cache_dir`. With a
    `guide` teacher the search runs against the guide and the teacher only checks the results (`guided.py`)."""
    made = _make(proposer, config, **kw)
    if guide is None:
        return made
    from cod.counterfactuals.guided import GuidedProposer

    return GuidedProposer(made, guide)


def _make(proposer: str, config, **kw: Any) -> Proposer:
    if proposer == "lexical":
        from cod.config import LexicalConfig
        from cod.counterfactuals.lexical import LexicalProposer

        if config is not None and not isinstance(config, LexicalConfig):
            raise ConfigError(f"The lexical proposer takes a LexicalConfig, got {type(config).__name__}.")
        return LexicalProposer(config, **kw)
    if proposer == "llm":
        from cod.config import LLMConfig
        from cod.counterfactuals.llm import LLMProposer

        if config is not None and not isinstance(config, LLMConfig):
            raise ConfigError(f"The LLM proposer takes an LLMConfig, got {type(config).__name__}.")
        return LLMProposer(config, **kw)
    raise ConfigError(f"Unknown proposer {proposer!r}: choose one of {list(PROPOSERS)}.")


_MAKE_KEYS = {"lexical": ("few_shot", "cache_dir"), "llm": ("api_key", "cache_dir")}


def propose(
    examples: Sequence[Example | str], teacher: Teacher, proposer: str = DEFAULT_PROPOSER, config=None, **kw: Any
) -> list[Counterfactual]:
    """One counterfactual per example from the named proposer; other keywords go to its `propose`
    (`target`, `n`, `on_progress`, `stop`) or its constructor (`few_shot`, `api_key`, `cache_dir`, `guide`)."""
    make = {k: kw.pop(k) for k in (*_MAKE_KEYS.get(proposer, ()), "guide") if k in kw}
    return make_proposer(proposer, config, **make).propose(examples, teacher, **kw)
