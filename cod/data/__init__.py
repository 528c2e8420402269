"""Data: readers for every file format, label handling, the few-shot draw and held-out splits, the built-in tasks."""

from cod.data.readers import Example, LabelledData, LoadReport, TaskSplits, load, load_texts
from cod.data.splits import cod_real_half, held_out, sample_few_shot, without_drawn
from cod.data.tasks import ALIASES, TASKS, load_task, rotten_tomatoes

__all__ = [
    "ALIASES",
    "Example",
    "LabelledData",
    "LoadReport",
    "TASKS",
    "TaskSplits",
    "cod_real_half",
    "held_out",
    "load",
    "load_task",
    "load_texts",
    "rotten_tomatoes",
    "sample_few_shot",
    "without_drawn",
]
