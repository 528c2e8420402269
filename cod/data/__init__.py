"""Data: readers for every file format, label handling, the few-shot draw and held-out splits, the built-in tasks."""

from cod.data.readers import Example, LabelledData, LoadReport, TaskSplits, cod_real_half, load, sample_few_shot
from cod.data.tasks import ALIASES, TASKS, load_task, rotten_tomatoes

__all__ = [
    "ALIASES",
    "Example",
    "LabelledData",
    "LoadReport",
    "TASKS",
    "TaskSplits",
    "cod_real_half",
    "load",
    "load_task",
    "rotten_tomatoes",
    "sample_few_shot",
]
