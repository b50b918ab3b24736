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
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.examples import Examples
from ..models.encoder_head import build_encoder
from ..progress import track
from ..tracking.phases import PhasedLog
from ..training.checkpoint import latest_valid, saved_step
from ..training.fit_examples import fit_examples
from ..zoo import mlp_trunk, residual_trunk, scale_trunk
from .algorithms import GradientBased, episode_accuracy, episode_losses, get_algorithm, head_names
from .core import EpisodeSampler, mean_ci
from .data import MetaData, load_meta_data


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

    def __init__(self, net: nn.Sequential, algorithm, inner_lr: float, inner_steps: int, n_way: int,
                 zero_head: bool = False):
        super().__init__()
        self.net, self.algorithm, self.inner_lr, self.inner_steps = net, algorithm, inner_lr, inner_steps
        self.n_way, self.zero_head = n_way, zero_head

    def forward(self, batch: dict) -> torch.Tensor:
        params = start_params(self.net, self.zero_head)
        return episode_losses(self.algorithm, self.net, params, batch["xs"], batch["ys"], batch["xq"], batch["yq"],
                              n_way=self.n_way, inner_lr=self.inner_lr, steps=self.inner_steps)


def start_params(net: nn.Module, zero_head: bool) -> dict:
    """The parameters every episode starts from; with `zero_head` the head starts at zero (the "zeroing
    trick" of Kao et al. 2022: each episode permutes its labels, so a meta-learned head only adds noise;
    from zero, the first inner step gives class-mean-like weights)."""
    params = dict(net.named_parameters())
    if zero_head:
        params.update({n: torch.zeros_like(params[n]) for n in head_names(net)})
    return params


def build_net(cfg, data: MetaData) -> nn.Sequential:
    """Sequential(encoder, head): images, `model.name`'s factory (small_cnn); text, the `meta.trunk` over
    the frozen features, (N, H) -> (N, feature_dim). The head is Linear(feature_dim, n_way)."""
    if data.modality == "text":
        h, m = data.x.shape[1], cfg.meta
        encoder = {"mlp": lambda: mlp_trunk(in_features=h, hidden=m.trunk_dim, dropout=0.0),
                   "residual": lambda: residual_trunk(h, m.trunk_dim), "scale": lambda: scale_trunk(h)}[m.trunk]()
    else:
        encoder = build_encoder(cfg)
    return nn.Sequential(encoder, nn.Linear(encoder.feature_dim, cfg.meta.n_way))


def episode_accuracies(net: nn.Sequential, x, sampler: EpisodeSampler, episodes: int, algorithm, *,
                       inner_lr: float, steps: int, offset: int = 10**6, chunk: int = 25,
                       zero_head: bool = False) -> list[float]:
    """Query accuracy of each of `episodes` meta-test episodes, adapted by `algorithm` from `net`'s weights;
    `chunk` episodes at a time run in parallel under vmap. Episode e is the same for every method (it
    depends on the sampler's seed and e only), so two methods can be compared episode by episode."""
    params = {n: p.detach() for n, p in start_params(net, zero_head).items()}
    accs = []
    for first in track(range(0, episodes, chunk), "meta-test episodes", total=episodes, unit="episodes",
                       size=lambda f: min(chunk, episodes - f)):
        eps = [sampler.episode(offset + e) for e in range(first, min(first + chunk, episodes))]
        xs = torch.stack([x[e[0]] for e in eps])
        ys = torch.stack([torch.from_numpy(e[1]) for e in eps])
        xq = torch.stack([x[e[2]] for e in eps])
        yq = torch.stack([torch.from_numpy(e[3]) for e in eps])
        accs += episode_accuracy(algorithm, net, params, xs, ys, xq, yq, n_way=sampler.n_way, inner_lr=inner_lr,
                                 steps=steps).tolist()
    return accs


def evaluate_episodes(net: nn.Sequential, x, sampler: EpisodeSampler, episodes: int, algorithm,
                      **kw) -> tuple[float, float]:
    """Mean query accuracy and its 95% CI over `episodes` meta-test episodes (`episode_accuracies`)."""
    return mean_ci(episode_accuracies(net, x, sampler, episodes, algorithm, **kw))


# The baselines adapt nothing meta-learned: plain SGD from pretrained weights on each episode's K shots.
FINE_TUNE = GradientBased("fine-tune", first_order=True, head_only=False)     # every weight
LINEAR_PROBE = GradientBased("linear probe", first_order=True, head_only=True)  # the new head only


def finetune_accuracies(pretrained: nn.Module, x, sampler: EpisodeSampler, episodes: int, steps: int = 50,
                        lr: float = 0.05, offset: int = 10**6, head_only: bool = False) -> list[float]:
    """Fine-tuning on each test episode's K shots: `steps` SGD steps on the pretrained encoder and a new
    zero-initialised head (`head_only`: the head alone, a linear probe); the accuracy of each episode."""
    net = nn.Sequential(copy.deepcopy(pretrained), nn.Linear(pretrained.feature_dim, sampler.n_way))
    return episode_accuracies(net, x, sampler, episodes, LINEAR_PROBE if head_only else FINE_TUNE, inner_lr=lr,
                              steps=steps, offset=offset, zero_head=True)


class _Plain(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, batch):
        return self.net(batch["inputs"])


def pretrain_classifier(cfg, data: MetaData, epochs: int = 3, lr: float = 1e-3) -> nn.Module:
    """The baseline's pretrained encoder: the same encoder trained as a plain classifier on the
    meta-train classes (Chen et al. 2019's "baseline")."""
    torch.manual_seed(cfg.train.seed)
    x, y, classes = data.x, data.y, data.train_classes
    idx = np.flatnonzero(np.isin(y.numpy(), classes))
    remap = {c: i for i, c in enumerate(classes)}
    encoder = build_net(cfg, data)[0]
    model = _Plain(nn.Sequential(encoder, nn.Linear(encoder.feature_dim, len(classes))))
    fit_examples(model, Examples(inputs=x[idx], labels=torch.tensor([remap[int(v)] for v in y[idx]])), cfg,
                 epochs=epochs, lr=lr, batch_size=64)
    return encoder


def identity_encoder(data: MetaData) -> nn.Module:
    """The pretrained features as they are (text: frozen MiniLM), for a linear probe: (N, H) -> (N, H)."""
    enc = nn.Identity()
    enc.feature_dim = data.x.shape[1]
    return enc


def meta_learn(cfg, data: MetaData, algorithm, *, callbacks=(), checkpoints=None,
               resume_from=None) -> tuple[nn.Sequential, object]:
    """(the meta-trained Sequential(encoder, head), fit()'s TrainState): `meta.meta_iterations` meta-updates
    of `meta.meta_batch` episodes of `data.train_classes`."""
    m = cfg.meta
    torch.manual_seed(cfg.train.seed)
    train_sampler = EpisodeSampler(data.y.numpy(), data.train_classes, m.n_way, m.k_shot, m.q_queries, cfg.train.seed)
    net = build_net(cfg, data)
    learner = MetaLearner(net, algorithm, m.inner_lr, m.inner_steps, m.n_way, m.zero_head)
    episodes = Episodes(data.x, train_sampler, m.meta_iterations * m.meta_batch)
    state = fit_examples(learner, episodes, cfg, loss_fn=lambda losses, batch: losses.mean(), epochs=1,
                         batch_size=m.meta_batch, weight_decay=0.0, checkpoints=checkpoints, resume_from=resume_from,
                         callbacks=callbacks)
    return net, state


def meta_test_sampler(cfg, data: MetaData, classes=None, seed_offset: int = 1) -> EpisodeSampler:
    """Episodes of `classes` (default the meta-test classes); a different seed from meta-training's."""
    m = cfg.meta
    return EpisodeSampler(data.y.numpy(), classes or data.test_classes, m.n_way, m.k_shot, m.q_queries,
                          cfg.train.seed + seed_offset)


def meta_train(cfg, run_dir=None, algorithm: str | None = None, data: MetaData | None = None, *,
               resume: bool = False, cache_dir=None) -> dict:
    """Meta-train `meta.algorithm`, then report meta-test accuracy (mean, 95% CI) over `meta.test_episodes`.

    With `run_dir`, checkpoints go to `run_dir/checkpoints` (training/checkpoint.py, as `train`'s) and
    `resume` continues from the newest valid one exactly: episode i depends only on (seed, i)."""
    m = cfg.meta
    algo = get_algorithm(algorithm or m.algorithm)
    data = data or load_meta_data(cfg, cache_dir)
    ckpt = Path(run_dir) / "checkpoints" if run_dir is not None else None
    found = latest_valid(ckpt) if resume and ckpt is not None else None
    if resume and found is None:
        print(f"note: no valid checkpoint in {ckpt}; starting from the beginning", file=sys.stderr)
    # metrics.jsonl and the `tracking:` trackers, as `tunewright train`; closed on errors
    with (PhasedLog(cfg, run_dir, resume_step=saved_step(found) if found else None) if run_dir is not None
          else contextlib.nullcontext()) as log:
        net, state = meta_learn(cfg, data, algo, checkpoints=ckpt, resume_from=found,
                                callbacks=log.callbacks(f"meta-train {algo.name}") if log else ())
        acc, ci = evaluate_episodes(net, data.x, meta_test_sampler(cfg, data), m.test_episodes, algo, inner_lr=m.inner_lr,
                                    steps=m.test_inner_steps, zero_head=m.zero_head)
        summary = {"algorithm": algo.name, "n_way": m.n_way, "k_shot": m.k_shot, "test_acc": acc, "ci95": ci,
                   "meta_iterations": state.step, "seconds": round(state.train_seconds, 1),
                   "train_classes": [data.names[c] for c in data.train_classes],
                   "test_classes": [data.names[c] for c in data.test_classes], "test_episodes": m.test_episodes,
                   "excluded_classes": data.excluded, "modality": data.modality}
        if log is not None:                  # PhasedLog wrote config.yaml; close() writes summary.json
            from safetensors.torch import save_file
            weights = Path(run_dir) / "meta_model.safetensors"
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
            log.log({"split": "meta_test", "phase": "meta-test", "acc": acc, "ci95": ci})
            log.close(summary, artifacts=[weights])
    return summary


def adapt_run(run_dir, shots: int, data: str | None = None, classes=None, episodes: int = 1,
              steps: int | None = None, cache_dir=None) -> dict:
    """Load a meta-trained run and adapt it to N-way `shots`-shot task(s) drawn from `data` (a packaged
    dataset or a text/label file; default: the run's meta.dataset and its meta-test classes); return the
    query accuracy (mean and 95% CI when episodes > 1). `classes`: ids, or label names for text."""
    from ..config import load_config

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    algo = get_algorithm(cfg.meta.algorithm)
    cfg.meta.k_shot = shots
    if data and not classes:
        cfg.meta.test_classes = []              # new data: every class it has enough examples of
    elif classes:
        cfg.meta.test_classes = list(classes)
    pool = load_meta_data(cfg, cache_dir, data)   # bad data fail here, before the weights are read
    test_cls = pool.test_classes or pool.train_classes
    net = build_net(cfg, pool)
    from safetensors.torch import load_file
    net.load_state_dict(load_file(str(run_dir / "meta_model.safetensors")))
    sampler = EpisodeSampler(pool.y.numpy(), test_cls, cfg.meta.n_way, shots, cfg.meta.q_queries, cfg.train.seed + 2)
    acc, ci = evaluate_episodes(net, pool.x, sampler, episodes, algo, inner_lr=cfg.meta.inner_lr,
                                steps=steps or cfg.meta.test_inner_steps, zero_head=cfg.meta.zero_head)
    return {"shots": shots, "classes": [pool.names[c] for c in test_cls], "episodes": episodes, "acc": acc,
            "ci95": ci}
