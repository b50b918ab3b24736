import numpy as np
import torch

from tunewright.multitask import task_probabilities, task_schedule, uncertainty_weighted
from tunewright.multitask.core import multitask_batches


def test_sampling_schemes():
    sizes = [100, 400]
    assert np.allclose(task_probabilities(sizes, "proportional"), [0.2, 0.8])
    assert np.allclose(task_probabilities(sizes, "temperature", 2.0), [10 / 30, 20 / 30])
    assert np.allclose(task_probabilities(sizes, "round_robin"), [0.5, 0.5])
    assert task_schedule(sizes, 5, "round_robin") == [0, 1, 0, 1, 0]
    s = task_schedule(sizes, 4000, "proportional", seed=1)
    assert abs(np.mean(s) - 0.8) < 0.03


def test_batches_come_from_one_task_each():
    sizes, offsets = [10, 30], [0, 10]
    batches = multitask_batches(offsets, sizes, "temperature", 2.0)(40, 4, 0, 0)
    assert len(batches) == 10
    for b in batches:
        assert all(i < 10 for i in b) or all(i >= 10 for i in b)


def test_uncertainty_weighting_gradient_and_optimum():
    # d/ds [exp(-s) L + s] = 0 at s = log L: the learned weight is 1 / L
    losses = torch.tensor([2.0, 0.5])
    s = torch.log(losses).requires_grad_(True)
    uncertainty_weighted(losses, s).backward()
    assert torch.allclose(s.grad, torch.zeros(2), atol=1e-6)
    assert float(uncertainty_weighted(losses, torch.zeros(2))) == 2.5
