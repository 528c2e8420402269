"""Models: loading teachers and students by Hub id, path or `demo`; heads; scoring; the embedded demo models."""

from cod.modeling.loading import check_labels, load_classifier, load_student, load_teacher
from cod.modeling.scoring import Teacher

__all__ = ["Teacher", "check_labels", "load_classifier", "load_student", "load_teacher"]
