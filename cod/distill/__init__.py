"""Distillation: losses, pair-preserving batching, the trainer, the student and the run folder."""

from cod.distill.trainer import distill

__all__ = ["distill"]
