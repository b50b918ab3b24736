"""Continual learning: a sequence of tasks fine-tuned one after another, and how much is forgotten.

Written on plain torch: avalanche (the usual library) pulls torchvision, which does not import
beside torch 2.13 CPU. `core.py` holds the pure functions (EWC penalty, Fisher, reservoir buffer,
LwF distillation, the accuracy-matrix metrics); `methods.py` the methods as objects that keep their
state across tasks (and are `fit()` callbacks during one), with the registry `METHODS` built from
their declared names; `driver.py` runs the sequence.
"""
from .core import (Reservoir, average_accuracy, backward_transfer, diagonal_fisher, ewc_penalty,
                   forward_transfer, lwf_loss, online_fisher, per_example_grads)

__all__ = ["Reservoir", "average_accuracy", "backward_transfer", "diagonal_fisher", "ewc_penalty",
           "forward_transfer", "lwf_loss", "online_fisher", "per_example_grads"]
