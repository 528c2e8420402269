"""Models: loading teachers and students by Hub id, path or `demo`; heads; scoring; batched inference; the embedded
demo models."""

from cod.modeling.inference import length_sorted_batches, predict_logits, softmax
from cod.modeling.loading import check_labels, load_classifier, load_student, load_teacher
from cod.modeling.scoring import Teacher

__all__ = [
    "Teacher",
    "check_labels",
    "length_sorted_batches",
    "load_classifier",
    "load_student",
    "load_teacher",
    "predict_logits",
    "softmax",
]
