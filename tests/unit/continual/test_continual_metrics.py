import torch

from tunewright.continual import average_accuracy, backward_transfer, forward_transfer, lwf_loss


def test_accuracy_matrix_metrics():
    R = [[0.9, 0.5, 0.4], [0.7, 0.8, 0.5], [0.6, 0.7, 0.9]]
    assert abs(average_accuracy(R) - (0.6 + 0.7 + 0.9) / 3) < 1e-9
    assert abs(backward_transfer(R) - ((0.6 - 0.9) + (0.7 - 0.8)) / 2) < 1e-9
    assert abs(forward_transfer(R, [0.5, 0.5, 0.5]) - ((0.5 - 0.5) + (0.5 - 0.5)) / 2) < 1e-9


def test_lwf_loss_zero_when_outputs_agree():
    z = torch.randn(4, 3)
    assert float(lwf_loss(z, z)) < 1e-6
    assert float(lwf_loss(z, -z)) > 0.01
