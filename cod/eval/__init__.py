"""Evaluation: metrics, statistics over seeds, decision-boundary probes and Plotly figures."""

from cod.eval.metrics import StudentScorer, evaluate, evaluation_table, scorer_probs

__all__ = ["StudentScorer", "evaluate", "evaluation_table", "scorer_probs"]
