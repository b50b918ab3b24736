"""Multi-task fine-tuning: one shared backbone, one head (and optionally one adapter) per task.

`core.py` holds task sampling and loss weighting as pure functions; `driver.py` trains with the one
`fit()` (a custom `epoch_batches` makes every batch come from one task) and writes the
negative-transfer report. No multi-task library is needed: this is plain torch.
"""
from .core import task_probabilities, task_schedule, uncertainty_weighted

__all__ = ["task_probabilities", "task_schedule", "uncertainty_weighted"]
