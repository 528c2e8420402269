"""Teachers behind one interface (`label_names`, `predict_proba`, `logits`, `predict`, `forward_passes`, `info()`):
sequence classifiers (`cod.modeling.scoring.Teacher`), local causal LMs and chat models behind an OpenAI-compatible
endpoint, the latter two scored on label words with a persistent score cache."""

from cod.modeling.scoring import Teacher as ClassifierTeacher
from cod.modeling.teachers.api import APISettings, APITeacher, BudgetExceeded
from cod.modeling.teachers.base import Score, ScoredTeacher
from cod.modeling.teachers.cache import ScoreCache
from cod.modeling.teachers.causal_lm import CausalLMTeacher
from cod.modeling.teachers.load import KINDS, LLMTeacherOptions, load_llm_teacher, teacher_kind
from cod.modeling.teachers.prompt import Prompt

__all__ = [
    "APISettings",
    "APITeacher",
    "BudgetExceeded",
    "CausalLMTeacher",
    "ClassifierTeacher",
    "KINDS",
    "LLMTeacherOptions",
    "Prompt",
    "Score",
    "ScoreCache",
    "ScoredTeacher",
    "load_llm_teacher",
    "teacher_kind",
]
