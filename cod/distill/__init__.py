"""Distillation: losses (one objective per method), pair-preserving batching, the trainer, checkpoint selection,
checkpoints, the student and the run folder."""

from cod.distill.losses import OBJECTIVES, Objective
from cod.distill.trainer import DistillEvent, DistillResult, distill, training_step

__all__ = ["OBJECTIVES", "DistillEvent", "DistillResult", "Objective", "distill", "training_step"]
