"""Counterfactual proposers behind one interface (see `base.Proposer`)."""

from cod.counterfactuals.base import Counterfactual, Proposer, default_target

__all__ = ["Counterfactual", "Proposer", "default_target"]
