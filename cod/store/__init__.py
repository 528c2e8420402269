"""The project store: one SQLite file holding projects, their examples, curated counterfactuals, runs and sweeps."""

from cod.store.projects import Project, Store

__all__ = ["Project", "Store"]
