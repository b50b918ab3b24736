"""The meta-learning algorithms, each an object that declares what it is.

Every algorithm answers one question for one episode: the query logits (n*q, n_way) after seeing the
support set (n*k examples, labels 0..n_way-1). Training takes cross-entropy of those logits against the
query labels and backpropagates into the start parameters; testing takes their argmax. What differs is
declared on the object, never by comparing names:

    MAML     (Finn et al. 2017)   inner SGD on every parameter, meta-gradient through the inner gradient
    FOMAML   (Finn et al. 2017)   the same with the first-order approximation d theta' / d theta := I
    ANIL     (Raghu et al. 2020)  inner SGD on the head only; the encoder is reused as it is
    ProtoNet (Snell et al. 2017)  no inner loop and no head: a query's logits are minus its squared
                                  Euclidean distances to the class means (prototypes) of the support
                                  embeddings

The network is always `nn.Sequential(encoder, head)` (driver.build_net): parameters "0.*" are the
encoder, "1.*" the head. ProtoNet keeps the head unused, so one file format serves all four.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ..config import declared
from .core import adapt, maml_loss

HEAD = "1."                                      # parameter-name prefix of the head in Sequential(encoder, head)


def head_names(net: nn.Module) -> list[str]:
    return [n for n, _ in net.named_parameters() if n.startswith(HEAD)]


@dataclass(frozen=True)
class GradientBased:
    """MAML and its variants: `steps` SGD steps on the support loss, then the adapted network on the queries."""
    name: str
    first_order: bool            # drop the second-order term of the meta-gradient
    head_only: bool              # the inner loop moves the head only (ANIL)
    inner_loop: bool = True
    cite: str = ""

    def adapt_names(self, net: nn.Module) -> list[str] | None:
        """The parameters the inner loop moves; None: all of them."""
        return head_names(net) if self.head_only else None

    def query_logits(self, net, params: dict, xs, ys, xq, *, n_way: int, inner_lr: float, steps: int,
                     training: bool = True) -> torch.Tensor:
        # At test time there is no meta-gradient to keep, so the cheaper first-order inner loop gives
        # the same adapted weights.
        fast = adapt(net, params, xs, ys, inner_lr=inner_lr, steps=steps, adapt_names=self.adapt_names(net),
                     first_order=self.first_order or not training)
        return functional_call(net, fast, (xq,))

    def episode_losses(self, net, params: dict, xs, ys, xq, yq, *, n_way: int, inner_lr: float,
                       steps: int) -> torch.Tensor:
        """Query cross-entropy (E,) of a meta-batch after the inner loop: core.maml_loss."""
        return maml_loss(net, params, xs, ys, xq, yq, inner_lr=inner_lr, steps=steps, first_order=self.first_order,
                         adapt_names=self.adapt_names(net))


@dataclass(frozen=True)
class Prototypical:
    """Prototypical Networks: logits_qc = -||f(x_q) - mean_{s: y_s = c} f(x_s)||^2, f the encoder."""
    name: str = "protonet"
    first_order: bool = False
    head_only: bool = False
    inner_loop: bool = False
    cite: str = "Snell et al. 2017"

    def adapt_names(self, net: nn.Module) -> list[str]:
        return []

    def query_logits(self, net, params: dict, xs, ys, xq, *, n_way: int, inner_lr: float = 0.0, steps: int = 0,
                     training: bool = True) -> torch.Tensor:
        enc = {n[len("0."):]: p for n, p in params.items() if n.startswith("0.")}
        zs, zq = functional_call(net[0], enc, (xs,)), functional_call(net[0], enc, (xq,))   # (n*k, D), (n*q, D)
        onehot = F.one_hot(ys, n_way).to(zs.dtype)                                       # (n*k, n_way)
        protos = onehot.T @ zs / onehot.sum(0).unsqueeze(1)                              # (n_way, D)
        return -((zq.unsqueeze(1) - protos.unsqueeze(0)) ** 2).sum(-1)                   # (n*q, n_way)

    def episode_losses(self, net, params: dict, xs, ys, xq, yq, *, n_way: int, inner_lr: float = 0.0,
                       steps: int = 0) -> torch.Tensor:
        """Query cross-entropy (E,) of a meta-batch, episodes under vmap."""
        def one(p, a, b, c, d):
            return F.cross_entropy(self.query_logits(net, p, a, b, c, n_way=n_way), d)
        return vmap(one, in_dims=(None, 0, 0, 0, 0), randomness="same")(params, xs, ys, xq, yq)


ALGORITHMS = {a.name: a for a in (
    GradientBased("maml", first_order=False, head_only=False, cite="Finn et al. 2017"),
    GradientBased("fomaml", first_order=True, head_only=False, cite="Finn et al. 2017, first order"),
    GradientBased("anil", first_order=False, head_only=True, cite="Raghu et al. 2020"),
    Prototypical(),
)}
declared.declare("meta.algorithm", ALGORITHMS)   # config checks `meta.algorithm:` against these names when it loads


def get_algorithm(name: str):
    """The algorithm declared under `name`; a ConfigError names the key, the value and the choices."""
    declared.check("meta.algorithm", name)
    return ALGORITHMS[name]


def episode_losses(algorithm, net, params: dict, xs, ys, xq, yq, *, n_way: int, inner_lr: float,
                   steps: int) -> torch.Tensor:
    """Query cross-entropy (E,) of a meta-batch: xs (E, n*k, ...), ys (E, n*k), xq (E, n*q, ...), yq (E, n*q).
    Backpropagating their mean into `params` is the algorithm's meta-gradient."""
    return algorithm.episode_losses(net, params, xs, ys, xq, yq, n_way=n_way, inner_lr=inner_lr, steps=steps)


def episode_accuracy(algorithm, net, params: dict, xs, ys, xq, yq, *, n_way: int, inner_lr: float,
                     steps: int) -> torch.Tensor:
    """Query accuracy (E,) after adapting to each episode's support set (test time: first order)."""
    def one(a, b, c, d):
        logits = algorithm.query_logits(net, params, a, b, c, n_way=n_way, inner_lr=inner_lr, steps=steps,
                                        training=False)
        return (logits.argmax(-1) == d).float().mean()
    return vmap(one, randomness="same")(xs, ys, xq, yq)
