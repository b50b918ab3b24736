"""Meta-learning with torch.func: MAML (second order), first-order MAML and ANIL.

Written on torch.func rather than learn2learn (the usual library): learn2learn has no wheel for
Python 3.11, its sdist fails to build here, and it is unmaintained. `core.py` holds the episode
sampler and the functional inner/outer loop; `driver.py` meta-trains with `fit()` over a dataset
of episodes and adapts a meta-trained run to a new task.
"""
from .core import EpisodeSampler, adapt, maml_loss, mean_ci, sample_episode, split_classes

__all__ = ["EpisodeSampler", "adapt", "maml_loss", "mean_ci", "sample_episode", "split_classes"]
