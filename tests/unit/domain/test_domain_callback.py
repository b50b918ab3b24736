from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunewright.config.load import config_from_dict
from tunewright.domain.callbacks import DomainAlignment
from tunewright.domain.driver import adapt_domain
from tunewright.data.examples import Examples, batches_forever
from tunewright.domain.core import coral_loss, dann_lambda, mmd
from tunewright.domain.methods import DANN, METHODS
from tunewright.errors import ConfigError
from tunewright.models.encoder_head import EncoderHead
from tunewright.training.fit_examples import fit_examples

CFG = config_from_dict({"train": {"epochs": 1, "batch_size": 16, "lr": 1e-2, "log_every_steps": 100}})


def _data(shift):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    return Examples(inputs=x, labels=(x[:, 0] > 0).long()), Examples(inputs=x + shift)


def _model():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
    enc.feature_dim = 8
    return EncoderHead(enc, nn.Linear(8, 2))


def _one_step(method, weight=0.5, progress=0.3):
    """One on_loss call on fixed source/target batches: (model, callback, source batch, target batch, loss)."""
    g = torch.Generator().manual_seed(1)
    src = {"inputs": torch.randn(16, 6, generator=g), "labels": torch.randint(0, 2, (16,), generator=g)}
    tgt = {"inputs": torch.randn(12, 6, generator=g) * 2 + 1}
    model = _model()
    cb = DomainAlignment(method, lambda: iter([tgt]), weight=weight, feature_dim=8)
    ctx = SimpleNamespace(model=model, state=SimpleNamespace(step=3, total_steps=10))
    assert progress == 3 / 10
    cb.on_fit_start(ctx)
    base = F.cross_entropy(model(src), src["labels"])
    return model, cb, src, tgt, base, cb.on_loss(ctx, base, src)


@pytest.mark.parametrize("method, loss", [("coral", coral_loss), ("mmd", mmd)])
def test_alignment_adds_weight_times_the_methods_loss_on_source_and_target_features(method, loss):
    model, cb, src, tgt, base, out = _one_step(method)
    expected = loss(model.features(src), model.features(tgt)).detach()
    assert float(expected) > 1e-4                                     # a shifted, scaled target: not aligned
    assert torch.allclose(out, base + 0.5 * expected, atol=1e-6)
    assert cb.last["align"] == pytest.approx(float(expected), rel=1e-5)


def test_dann_adds_the_discriminators_loss_and_reverses_its_gradient_into_the_encoder():
    model, cb, src, tgt, base, out = _one_step("dann")
    disc = cb.method.disc
    fs, ft = model.features(src), model.features(tgt)
    d = torch.cat([torch.zeros(16), torch.ones(12)])
    plain = F.binary_cross_entropy_with_logits(disc(torch.cat([fs, ft])).squeeze(-1), d)
    assert torch.allclose(out, base + 0.5 * plain, atol=1e-6)
    # The encoder gets -lambda_p times the gradient of the domain loss; the discriminator the plain one.
    enc_w, disc_w = model.backbone[0].weight, disc[0].weight
    g_align = torch.autograd.grad(out - base, [enc_w, disc_w])
    g_plain = torch.autograd.grad(0.5 * plain, [enc_w, disc_w])
    lam = dann_lambda(0.3, cb.method.gamma)
    assert 0 < lam < 1
    assert torch.allclose(g_align[0], -lam * g_plain[0], atol=1e-6)
    assert torch.allclose(g_align[1], g_plain[1], atol=1e-6)


def test_source_only_adds_nothing_and_draws_no_target_batch():
    drawn = []
    cb = DomainAlignment("source_only", lambda: drawn.append(1) or iter([]), feature_dim=8)
    loss = torch.tensor(1.25)
    assert cb.on_loss(SimpleNamespace(model=None, state=None), loss, {}) is loss
    assert drawn == []


def test_each_method_trains_through_fit_and_dann_steps_its_discriminator():
    src, tgt = _data(1.0)
    for method in METHODS:
        model = _model()
        cb = DomainAlignment(method, lambda: batches_forever(tgt, 16, 0), feature_dim=8)
        disc = getattr(cb.method, "disc", None)
        before = [p.detach().clone() for p in disc.parameters()] if disc is not None else []
        state = fit_examples(model, src, CFG, callbacks=[cb])
        assert state.step == 4
        assert all(not torch.equal(b, p) for b, p in zip(before, disc.parameters() if disc else []))
    assert isinstance(DomainAlignment("dann", lambda: iter([]), feature_dim=8).method, DANN)


def test_coral_training_aligns_feature_covariances_more_than_source_only():
    # Target = source scaled by 3 along every axis: the covariances differ. Training with a large
    # CORAL weight must leave the two feature covariances closer than training on the source alone.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    src, tgt = Examples(inputs=x, labels=(x[:, 0] > 0).long()), Examples(inputs=3 * x[torch.randperm(128, generator=g)])
    cfg = config_from_dict({"train": {"epochs": 5, "batch_size": 32, "lr": 1e-2, "log_every_steps": 100}})
    gap = {}
    for method in ("source_only", "coral"):
        model = _model()
        fit_examples(model, src, cfg, callbacks=[DomainAlignment(method, lambda: batches_forever(tgt, 32, 0),
                                                                 weight=100.0)])
        with torch.no_grad():
            gap[method] = float(coral_loss(model.features({"inputs": src.columns["inputs"]}),
                                           model.features({"inputs": tgt.columns["inputs"]})))
    assert gap["coral"] < 0.5 * gap["source_only"], gap


def test_the_registry_is_built_from_the_declarations_and_checks_the_config():
    assert set(METHODS) == {"source_only", "dann", "coral", "mmd"}
    assert all(cls.name == name for name, cls in METHODS.items())
    with pytest.raises(ConfigError, match=r"domain.method: 'dan' .*Did you mean 'dann'"):
        adapt_domain(config_from_dict({"domain": {"method": "dan"}}))        # before any data is read
