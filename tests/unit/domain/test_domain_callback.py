import torch
from torch import nn

from tunewright.config.load import config_from_dict
from tunewright.domain.callbacks import DomainAlignment
from tunewright.data.examples import Examples, batches_forever
from tunewright.models.encoder_head import EncoderHead
from tunewright.training.fit_examples import fit_examples


def _data(shift):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    return Examples(inputs=x, labels=(x[:, 0] > 0).long()), Examples(inputs=x + shift)


def test_each_method_trains_through_fit_and_dann_trains_its_discriminator():
    cfg = config_from_dict({"train": {"epochs": 1, "batch_size": 16, "lr": 1e-2, "log_every_steps": 100}})
    src, tgt = _data(1.0)
    for method in ("source_only", "dann", "coral", "mmd"):
        torch.manual_seed(0)
        enc = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        enc.feature_dim = 8
        model = EncoderHead(enc, nn.Linear(8, 2))
        cb = DomainAlignment(method, lambda: batches_forever(tgt, 16, 0), feature_dim=8)
        before = [p.detach().clone() for p in cb.disc.parameters()] if cb.disc is not None else []
        state = fit_examples(model, src, cfg, callbacks=[cb])
        assert state.step == 4
        if method != "source_only":
            assert cb.last["align"] >= 0
        for b, p in zip(before, cb.disc.parameters() if cb.disc is not None else []):
            assert not torch.equal(b, p)
