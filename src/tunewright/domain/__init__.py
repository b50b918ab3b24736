"""Unsupervised domain adaptation: labeled source, unlabeled target (DANN, Deep CORAL, MMD).

Written on plain torch: the usual libraries (e.g. avalanche, transfer-learning-library) need
torchvision, which does not import beside torch 2.13 CPU. `core.py` holds the pure functions,
`methods.py` one declared object per method (its loss; DANN's discriminator) and the registry
`METHODS` built from their names, `callbacks.py` the `fit()` callback that adds the method's loss,
`driver.py` the digits -> MNIST example.
"""
from .core import coral_loss, dann_lambda, grad_reverse, mmd, domain_shift
from .callbacks import DomainAlignment
from .methods import METHODS

__all__ = ["coral_loss", "dann_lambda", "grad_reverse", "mmd", "domain_shift", "DomainAlignment", "METHODS"]
