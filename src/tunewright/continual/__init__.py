"""Continual learning: a sequence of tasks fine-tuned one after another, and how much is forgotten.

Written on plain torch: avalanche (the usual library) pulls torchvision, which does not import
beside torch 2.13 CPU. `core.py` holds the pure functions (EWC penalty, Fisher, reservoir buffer,
LwF distillation, the accuracy-matrix metrics); `callbacks.py` the `fit()` wrappers; `driver.py`
runs the sequence.
"""
from .core import (Reservoir, average_accuracy, backward_transfer, diagonal_fisher, ewc_penalty,
                   forward_transfer, lwf_loss)

__all__ = ["Reservoir", "average_accuracy", "backward_transfer", "diagonal_fisher", "ewc_penalty",
           "forward_transfer", "lwf_loss"]
