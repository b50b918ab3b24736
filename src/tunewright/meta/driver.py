"""Meta-training with `fit()` over a dataset of episodes, meta-testing, and `adapt` for a new task.

`fit()` sees an ordinary dataset whose examples are episodes (support and query tensors); a batch
is a meta-batch of episodes, `MetaLearner.forward` returns the per-episode query losses after the
inner loop, and the loss is their mean. Episode i is a pure function of (seed, i), so meta-training
resumes exactly like any run.

Example (configs/meta_fashion_mnist.yaml): Fashion-MNIST, meta-train classes 0-4 (T-shirt, trouser,
pullover, dress, coat), meta-test classes 5-9 (sandal, shirt, sneaker, bag, ankle boot), on
`tunewright.zoo:small_cnn`. The baseline fine-tunes, on the same K shots, a copy of the same
network pre-trained (with `fit()`) as an ordinary classifier on the meta-train classes.
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..assets.datasets import get_dataset
from ..tracking.phases import PhasedLog
from ..data.examples import Examples, image_tensors
from ..models.encoder_head import build_encoder
from ..training.fit_examples import fit_examples
from .core import EpisodeSampler, adapt, maml_loss, mean_ci, split_classes


class Episodes(Dataset):
    """Episode i of `sampler` as an example dict: xs (n*k, ...), ys, xq (n*q, ...), yq."""

    def __init__(self, x: torch.Tensor, sampler: EpisodeSampler, length: int, offset: int = 0):
        self.x, self.sampler, self.length, self.offset = x, sampler, length, offset

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        s, sy, q, qy, _ = self.sampler.episode(self.offset + i)
        return {"xs": self.x[s], "ys": torch.from_numpy(sy), "xq": self.x[q], "yq": torch.from_numpy(qy),
                "labels": torch.from_numpy(qy)}


class MetaLearner(nn.Module):
    """Holds `net` (encoder then head, nn.Sequential); forward(meta-batch) -> query losses (E,)."""

    def __init__(self, net: nn.Sequential, algorithm: str, inner_lr: float, inner_steps: int):
        super().__init__()
        self.net, self.algorithm, self.inner_lr, self.inner_steps = net, algorithm, inner_lr, inner_steps

    def adapt_names(self) -> list[str] | None:
        return [n for n, _ in self.net.named_parameters() if n.startswith("1.")] if self.algorithm == "anil" else None

    zero_head = False

    def start(self) -> dict:
        """The parameters every episode starts from; with `zero_head` the head starts at zero
        (the "zeroing trick" of Kao et al. 2022: each episode permutes its labels, so a meta-learned
        head only adds noise; from zero, the first inner step gives class-mean-like weights)."""
        params = dict(self.net.named_parameters())
        if self.zero_head:
            params.update({n: torch.zeros_like(p) for n, p in params.items() if n.startswith("1.")})
        return params

    def forward(self, batch: dict) -> torch.Tensor:
        params = self.start()
        return maml_loss(self.net, params, batch["xs"], batch["ys"], batch["xq"], batch["yq"],
                         inner_lr=self.inner_lr, steps=self.inner_steps, first_order=self.algorithm == "fomaml",
                         adapt_names=self.adapt_names())


def build_net(cfg) -> nn.Sequential:
    encoder = build_encoder(cfg)
    return nn.Sequential(encoder, nn.Linear(encoder.feature_dim, cfg.meta.n_way))


def load_images(cfg):
    """(x (N, 1, 28, 28), y (N,), meta-train classes, meta-test classes), `meta.per_class` images per class."""
    m = cfg.meta
    frames = get_dataset(m.dataset).load()
    names = getattr(get_dataset(m.dataset), "label_names", None)
    x, y = image_tensors(frames["train"], names)
    keep = np.concatenate([np.random.default_rng(cfg.train.seed + c).permutation(np.flatnonzero(y.numpy() == c))
                           [:m.per_class] for c in np.unique(y.numpy())])
    x, y = x[keep], y[keep]
    train_cls, test_cls = split_classes(sorted(set(y.tolist())), m.test_classes)
    return x, y, train_cls, test_cls


@torch.no_grad()
def _acc(logits, y) -> float:
    return float((logits.argmax(-1) == y).float().mean())


def evaluate_episodes(net: nn.Sequential, x, sampler: EpisodeSampler, episodes: int, *, inner_lr: float,
                      steps: int, adapt_names=None, offset: int = 10**6, chunk: int = 25,
                      zero_head: bool = False) -> tuple[float, float]:
    """Mean query accuracy and 95% CI over `episodes` meta-test episodes, each adapted with `steps` SGD
    steps from `net`'s weights; `chunk` episodes at a time run in parallel under vmap."""
    params = {n: p.detach() for n, p in net.named_parameters()}
    if zero_head:
        params.update({n: torch.zeros_like(p) for n, p in params.items() if n.startswith("1.")})

    def one(xs, ys, xq, yq):
        fast = adapt(net, params, xs, ys, inner_lr=inner_lr, steps=steps, first_order=True, adapt_names=adapt_names)
        return (torch.func.functional_call(net, fast, (xq,)).argmax(-1) == yq).float().mean()

    accs = []
    for start in range(0, episodes, chunk):
        eps = [sampler.episode(offset + e) for e in range(start, min(start + chunk, episodes))]
        xs = torch.stack([x[e[0]] for e in eps])
        ys = torch.stack([torch.from_numpy(e[1]) for e in eps])
        xq = torch.stack([x[e[2]] for e in eps])
        yq = torch.stack([torch.from_numpy(e[3]) for e in eps])
        accs += torch.func.vmap(one, randomness="same")(xs, ys, xq, yq).tolist()
    return mean_ci(accs)


def finetune_baseline(pretrained: nn.Module, x, sampler: EpisodeSampler, episodes: int, steps: int = 50,
                      lr: float = 0.05, offset: int = 10**6) -> tuple[float, float]:
    """Plain fine-tuning on each test episode's K shots: `steps` SGD steps on the whole network (the
    pretrained encoder and a new zero-initialised head), nothing meta-learned."""
    head = nn.Linear(pretrained.feature_dim, sampler.n_way)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    net = nn.Sequential(copy.deepcopy(pretrained), head)
    return evaluate_episodes(net, x, sampler, episodes, inner_lr=lr, steps=steps, offset=offset)


class _Plain(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, batch):
        return self.net(batch["inputs"])


def pretrain_classifier(cfg, x, y, classes, epochs: int = 3) -> nn.Module:
    """The baseline's 'pretrained weights': the same encoder trained as a plain classifier on the meta-train classes."""
    torch.manual_seed(cfg.train.seed)
    idx = np.flatnonzero(np.isin(y.numpy(), classes))
    remap = {c: i for i, c in enumerate(classes)}
    encoder = build_encoder(cfg)
    model = _Plain(nn.Sequential(encoder, nn.Linear(encoder.feature_dim, len(classes))))
    fit_examples(model, Examples(inputs=x[idx], labels=torch.tensor([remap[int(v)] for v in y[idx]])), cfg,
                 epochs=epochs, lr=1e-3, batch_size=64)
    return encoder


def meta_train(cfg, run_dir=None, algorithm: str | None = None, data=None) -> dict:
    """Meta-train `meta.algorithm`, then report meta-test accuracy (mean, 95% CI) over `meta.test_episodes`."""
    m = cfg.meta
    algorithm = algorithm or m.algorithm
    torch.manual_seed(cfg.train.seed)
    x, y, train_cls, test_cls = data or load_images(cfg)
    train_sampler = EpisodeSampler(y.numpy(), train_cls, m.n_way, m.k_shot, m.q_queries, cfg.train.seed)
    test_sampler = EpisodeSampler(y.numpy(), test_cls, m.n_way, m.k_shot, m.q_queries, cfg.train.seed + 1)
    net = build_net(cfg)
    learner = MetaLearner(net, algorithm, m.inner_lr, m.inner_steps)
    learner.zero_head = m.zero_head
    episodes = Episodes(x, train_sampler, m.meta_iterations * m.meta_batch)
    # metrics.jsonl and the `tracking:` trackers, as `tunewright train`; closed on errors
    with (PhasedLog(cfg, run_dir) if run_dir is not None else contextlib.nullcontext()) as log:
        state = fit_examples(learner, episodes, cfg, loss_fn=lambda losses, batch: losses.mean(), epochs=1,
                             batch_size=m.meta_batch, weight_decay=0.0,
                             callbacks=log.callbacks(f"meta-train {algorithm}") if log else ())
        acc, ci = evaluate_episodes(net, x, test_sampler, m.test_episodes, inner_lr=m.inner_lr,
                                    steps=m.test_inner_steps, adapt_names=learner.adapt_names(),
                                    zero_head=m.zero_head)
        summary = {"algorithm": algorithm, "n_way": m.n_way, "k_shot": m.k_shot, "test_acc": acc, "ci95": ci,
                   "meta_iterations": state.step, "seconds": round(state.train_seconds, 1),
                   "train_classes": train_cls, "test_classes": test_cls, "test_episodes": m.test_episodes}
        if log is not None:                  # PhasedLog wrote config.yaml; close() writes summary.json
            from safetensors.torch import save_file
            weights = Path(run_dir) / "meta_model.safetensors"
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
            log.log({"split": "meta_test", "phase": "meta-test", "acc": acc, "ci95": ci})
            log.close(summary, artifacts=[weights])
    return summary


def adapt_run(run_dir, shots: int, data: str | None = None, classes=None, episodes: int = 1,
              steps: int | None = None) -> dict:
    """Load a meta-trained run and adapt it to N-way `shots`-shot task(s) from `data` (default: the run's
    meta-test classes); return the query accuracy (mean and 95% CI when episodes > 1)."""
    from ..config import load_config

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    if data:
        cfg.meta.dataset = data
    if classes:
        cfg.meta.test_classes = list(classes)
    cfg.meta.k_shot = shots
    x, y, _, test_cls = load_images(cfg)
    net = build_net(cfg)
    from safetensors.torch import load_file
    net.load_state_dict(load_file(str(run_dir / "meta_model.safetensors")))
    sampler = EpisodeSampler(y.numpy(), test_cls, cfg.meta.n_way, shots, cfg.meta.q_queries, cfg.train.seed + 2)
    names = [n for n, _ in net.named_parameters() if n.startswith("1.")] if cfg.meta.algorithm == "anil" else None
    acc, ci = evaluate_episodes(net, x, sampler, episodes, inner_lr=cfg.meta.inner_lr,
                                steps=steps or cfg.meta.test_inner_steps, adapt_names=names,
                                zero_head=cfg.meta.zero_head)
    return {"shots": shots, "classes": test_cls, "episodes": episodes, "acc": acc, "ci95": ci}
