"""The project store: one SQLite file holding projects, their examples, curated counterfactuals, runs and sweeps.

Other code uses this public API only: `Store` (projects, curation, runs, sweeps, export/import), the record types,
the curation statuses, `project_name_for`, and the pair exports (`pair_records`, `to_dataset`, `dataset_card`,
`push_to_hub`).
"""

from cod.store.curation import CURATED, PERSON, STATUSES
from cod.store.names import project_name_for
from cod.store.projects import Action, CounterfactualRecord, HistoryEntry, Project, Store, default_path
from cod.store.runs import RUN_STATUSES, Run
from cod.store.transfer import dataset_card, pair_records, push_to_hub, to_dataset

__all__ = [
    "CURATED",
    "PERSON",
    "RUN_STATUSES",
    "STATUSES",
    "Action",
    "CounterfactualRecord",
    "HistoryEntry",
    "Project",
    "Run",
    "Store",
    "dataset_card",
    "default_path",
    "pair_records",
    "project_name_for",
    "push_to_hub",
    "to_dataset",
]
