import torch

from tunewright.domain import coral_loss, dann_lambda, grad_reverse, mmd


def test_gradient_reversal_flips_sign_and_scales_by_lambda():
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)                                  # identity forward
    y.backward(upstream)
    assert torch.allclose(x.grad, -0.3 * upstream)


def test_coral_loss_zero_for_identical_covariances_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    fs = torch.randn(64, 5, generator=g)
    assert float(coral_loss(fs, fs + 3.0)) < 1e-10             # a shift keeps the covariance
    assert float(coral_loss(fs, fs[torch.randperm(64, generator=g)])) < 1e-10
    assert float(coral_loss(fs, 2 * fs)) > 1e-3


def test_mmd_small_for_same_distribution_large_for_shifted():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g)
    assert float(mmd(a, b)) < 0.05
    assert float(mmd(a, b + 2.0)) > 0.5


def test_dann_lambda_schedule_goes_from_zero_to_one():
    assert dann_lambda(0.0) == 0.0
    assert 0.99 < dann_lambda(1.0) < 1.0
