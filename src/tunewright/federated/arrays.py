"""Which tensors travel between a client and the server: only what trains.

A LoRA run sends the adapter and the head (about 1% of MiniLM), a full fine-tune sends every
parameter, a frozen backbone is never sent. Personalization keeps some trainable tensors at home
(`LOCAL` says which, by a rule on names): `adapter` keeps the client's own LoRA ("local" adapter)
and never sends it. `head` (FedPer) keeps each client's head for its own predictions; the head
still goes up so that the server can publish a complete global model (the head is 8 x 384 floats
on R8), but a client never takes the global head in place of its own.
"""
from __future__ import annotations

import re

import torch

LOCAL_ADAPTER = "local"          # the name of a client's own LoRA under personalize: adapter
# personalize -> (names never sent, names received but not loaded over the client's own)
LOCAL = {
    "none": (None, None),
    "head": (None, r"^head\."),
    "adapter": (rf"\.{LOCAL_ADAPTER}\.", None),
}


def travelling_names(model: torch.nn.Module, personalize: str = "none") -> list[str]:
    """Names of the trainable parameters that go to the server, in the model's order."""
    never, _ = LOCAL[personalize]
    rule = re.compile(never) if never else None
    return [n for n, p in model.named_parameters() if p.requires_grad and not (rule and rule.search(n))]


def kept_names(model: torch.nn.Module, personalize: str) -> list[str]:
    """Names of the trainable tensors a client keeps as its own between rounds (none without personalization)."""
    never, mine = LOCAL[personalize]
    rules = [re.compile(r) for r in (never, mine) if r]
    return [n for n, p in model.named_parameters() if p.requires_grad and any(r.search(n) for r in rules)]


def get_tensors(model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].detach().cpu().clone() for n in names}


@torch.no_grad()
def set_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], skip: str | None = None) -> None:
    """Copy `tensors` into the model's parameters of the same names (a name it lacks is an error);
    names matching the rule `skip` are left as they are."""
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise KeyError(f"the model has no parameter {missing[0]!r} ({len(missing)} names unknown); the server "
                       f"and the client must run the same model and method")
    rule = re.compile(skip) if skip else None
    for n, t in tensors.items():
        if rule is None or not rule.search(n):
            params[n].copy_(torch.as_tensor(t, dtype=params[n].dtype))


def to_record(tensors: dict[str, torch.Tensor]):
    """dict of tensors -> Flower ArrayRecord (numpy arrays, keys kept)."""
    from flwr.app import ArrayRecord
    return ArrayRecord({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def from_record(record) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(a.numpy().copy()) for k, a in record.items()}


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of the whole model's state (what a full-model federation would send each way)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
