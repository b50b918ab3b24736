"""One bottleneck adapter per task, inside a shared backbone (multi-task and continual learning).

    layer_t(x) = a_t(f(x))        a_t(h) = h + W_up,t act(W_down,t h),  W_up,t = 0 at init

Every target layer ``f`` of the backbone (the places ``method: adapter`` would use: attention and
feed-forward output projections of Hugging Face encoders, each EfficientNet block, every
linear/conv layer of other modules) is wrapped once in tunewright's own ``AdapterLayer``
(layers.py) and given one named adapter per task, ``task0``, ``task1``, ... ``set_task(module, t)``
activates task t's adapter in every layer; the others are not used in the forward pass, so they
get no gradient (Houlsby et al. 2019, sec. 2: per-task adapters on a shared network; Rebuffi et
al. 2017, "Learning multiple visual domains with residual adapters").

Continual learning builds "cannot forget by construction" on this: after task 0 the shared
weights and every other task's adapter are frozen (``train_only_task``), so training task t can
change only task t's own adapter.

Why our own code: the usual multi-adapter libraries (AdapterHub's ``adapters``) do not install
beside this stack (see adapter.py), and peft has no bottleneck adapters. A layer that already
holds another method's adapter (``method: adapter``) is wrapped again rather than shared, so the
run's own adapter stays active underneath the task adapters.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from torch import nn

from ..errors import ConfigError
from . import base
from .adapter import _leaf, _width, auto_targets
from .layers import AdapterLayer, LoraLayer

PREFIX = "task"


def task_name(t: int) -> str:
    return f"{PREFIX}{t}"


def _is_task_layer(m: nn.Module) -> bool:
    names = m.adapter_names() if isinstance(m, AdapterLayer) else []
    return bool(names) and all(n.startswith(PREFIX) and n[len(PREFIX):].isdigit() for n in names)


def _root_and_paths(module: nn.Module, kind: str, target_modules: Sequence[str]) -> tuple[nn.Module, list[str]]:
    """(the module adapters go into, their paths in it). A TaskModel (it has ``source`` and ``backbone``)
    gets them in its backbone, found as ``method: adapter`` finds them; any other module in its own
    linear/conv layers (never inside another method's adapter or LoRA weights)."""
    is_task_model = hasattr(module, "source") and hasattr(module, "backbone")
    root = module.backbone if is_task_model else module
    if list(target_modules) not in ([], ["auto"]):
        return root, base.match_targets(root, list(target_modules), lambda m: True, "adapter.target_modules")
    if is_task_model:
        return root, auto_targets(module, kind)
    paths = []
    for name, m in root.named_modules():
        if not name or not _leaf(m) or ".adapter." in f".{name}." or ".lora_" in f".{name}":
            continue
        paths.append(name.removesuffix(".base_layer"))          # a wrapped layer: wrap its wrapper
    if not paths:
        raise ConfigError(f"task adapters: no linear or conv layer in {type(root).__name__} to put adapters "
                          f"after; name the places with adapter.target_modules.")
    return root, list(dict.fromkeys(paths))


def add_task_adapters(module: nn.Module, n_tasks: int, width: int, activation: str = "relu",
                      kind: str = "houlsby", target_modules: Sequence[str] = ("auto",)) -> list[str]:
    """Put ``n_tasks`` adapters (bottleneck ``min(width, d)`` units for a layer of width d) after every
    target layer of ``module``; none is active until ``set_task``. Returns the wrapped layers' paths."""
    root, paths = _root_and_paths(module, kind, target_modules)
    for path in paths:
        layer = root.get_submodule(path)
        inner = layer.base_layer if isinstance(layer, (AdapterLayer, LoraLayer)) else layer
        dim, axis = _width(inner)
        if not _is_task_layer(layer):
            layer = AdapterLayer(layer)
            base.replace_module(root, path, layer)
        for t in range(n_tasks):
            layer.add_adapter(task_name(t), dim, max(1, dim // width), activation, axis)  # hidden = dim // rf
        layer.set_adapter(None)
    return paths


def task_layers(module: nn.Module) -> list[AdapterLayer]:
    return [m for m in module.modules() if _is_task_layer(m)]


def set_task(module: nn.Module, t: Optional[int]) -> None:
    """Make task t's adapter the active one in every task layer (None: the shared layers alone)."""
    for m in task_layers(module):
        m.set_adapter(None if t is None else task_name(t))


def is_task_adapter_param(name: str, t: Optional[int] = None) -> bool:
    """Whether parameter ``name`` belongs to a task adapter (to task t's, when t is given)."""
    tag = f".adapter.{task_name(t)}." if t is not None else f".adapter.{PREFIX}"
    return tag in f".{name}"


def train_only_task(model: nn.Module, t: int, also: Callable[[str], bool] = lambda name: False) -> list[str]:
    """Freeze everything but task t's adapter and the parameters for which ``also(name)`` holds
    (e.g. the head); returns the names that train."""
    names = []
    for n, p in model.named_parameters():
        train = is_task_adapter_param(n, t) or also(n)
        p.requires_grad_(train)
        if train:
            names.append(n)
    return names
