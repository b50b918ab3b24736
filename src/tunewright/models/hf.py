"""Hugging Face backbones: resolve offline, build pretrained or from a saved config, tokenizers.

A backbone is described by a JSON-able *source* dict, so a saved run rebuilds it without the
original weights or a network (``from_config``) and a new run loads it pretrained::

    {"type": "hf", "name_or_path": str, "auto_class": "AutoModel" | "AutoModelForCausalLM",
     "vision": bool, "revision": str | None, "trust_remote_code": bool,
     "config": dict | None}   # filled with backbone.config.to_dict() once built

Names that are neither a packaged model nor a local folder go to the hub. With no network (or
HF_HUB_OFFLINE=1) and nothing cached, HF raises a chain of errors; we raise ONE ModelLoadError.
"""
from __future__ import annotations

import inspect
import os
import socket
import warnings
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import torch

from tunewright.errors import ModelLoadError
from tunewright.hf_logging import quiet_hf  # noqa: F401  (also imported from here)
from tunewright.models.image_spec import ImageSpec
from tunewright.models.pooling import default_pooling, sentence_transformers_pooling


def _hub_kwargs(source: dict) -> dict:
    kw = {"trust_remote_code": bool(source.get("trust_remote_code", False))}
    if source.get("revision"):
        kw["revision"] = source["revision"]
    return kw


def _unresolvable(name: str, err: Exception, reachable: bool = False) -> ModelLoadError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    from tunewright.assets.models import MODELS
    where = (f"it is not a packaged model ({', '.join(MODELS)}) and not a local folder, so it was looked up "
             f"on the Hugging Face hub")
    if reachable:
        return ModelLoadError(f"Cannot load model {name!r}: {where}, which could not provide it: {first}")
    return ModelLoadError(
        f"Cannot load model {name!r}: {where}, which is not reachable from here (no network, or "
        f"HF_HUB_OFFLINE=1) and has nothing cached for it. Use a packaged model, a local HF folder, "
        f"or download it where a network is available and copy the folder here. (transformers said: {first})")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is on or the hub's host does not answer a TCP connect in ``timeout`` s.

    Without this, an unreachable hub costs ~30 s of HF retries before the same error. Behind a
    proxy a direct connect says nothing, so we then assume it is reachable and let HF try.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def from_hub(fn, name: str, source: dict, **kw):
    """``fn(name, **kw)`` from local files (a folder or the HF cache) first, then from the hub if it
    answers; one ModelLoadError otherwise. Callers wrap this in ``quiet_hf()``."""
    kw = {**_hub_kwargs(source), **kw}
    if Path(name).is_dir():
        return fn(name, **kw)  # a local folder: its errors are about its files, callers say which
    try:
        return fn(name, local_files_only=True, **kw)
    except OSError as err:
        if not hub_reachable():
            raise _unresolvable(name, err) from None
    try:
        return fn(name, **kw)
    except OSError as err:
        raise _unresolvable(name, err, reachable=True) from None


def hf_config(source: dict):
    """The backbone's HF config: from ``source["config"]`` if saved, else resolved from its name."""
    from transformers import AutoConfig, CONFIG_MAPPING
    if source.get("config") is not None:
        cfg = dict(source["config"])
        model_type = cfg.get("model_type")
        if model_type in CONFIG_MAPPING:
            return CONFIG_MAPPING[model_type].from_dict(cfg)
        # A remote-code config: its class comes through the original name (cached or hub), then
        # the saved values are put back on top.
        with quiet_hf():
            config = from_hub(AutoConfig.from_pretrained, source["name_or_path"], source)
        config.update({k: v for k, v in cfg.items() if k not in ("model_type", "transformers_version")})
        return config
    try:
        with quiet_hf():
            return from_hub(AutoConfig.from_pretrained, source["name_or_path"], source)
    except (OSError, ValueError) as err:  # a folder with a broken config.json or an unknown model_type
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"Cannot load model {source['name_or_path']!r}: {first}") from None


def _auto_class(name: str):
    import transformers
    return getattr(transformers, name)


def _init_kwargs(auto_cls, config, want: dict) -> dict:
    """Keep only the constructor kwargs the concrete model class accepts (e.g. add_pooling_layer)."""
    try:
        cls = auto_cls._model_mapping[type(config)]
        cls = cls[0] if isinstance(cls, (list, tuple)) else cls
        params = inspect.signature(cls.__init__).parameters
    except (KeyError, TypeError, ValueError):
        return {}
    return {k: v for k, v in want.items() if k in params}


def override_config_dropout(config, p: float, keys: Optional[tuple] = None) -> None:
    """Set every float ``*dropout*`` probability of an HF config (and its sub-configs) to ``p``, or only
    those named in ``keys``.

    Some models read these floats at build time (Llama's attention keeps ``attention_dropout`` as a
    float, not an nn.Dropout), so the config must say ``p`` before the model is built.
    """
    for key, value in list(vars(config).items()):
        if (key in keys if keys is not None else "dropout" in key) and isinstance(value, float):
            setattr(config, key, float(p))
        elif hasattr(value, "to_dict") and hasattr(value, "model_type"):  # nested sub-config
            override_config_dropout(value, p, keys)


# The attention-probability dropout of BERT, Llama/DistilBERT and GPT-2 configs. With 0,
# ``scaled_dot_product_attention`` on CPU can take its fused (flash) kernel, which does not support
# dropout; otherwise it falls back to the math path, which keeps B x heads x T x T tensors.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def set_attention_module_dropout(model: torch.nn.Module, p: float) -> None:
    """Attention dropout set on a built model: the dropout an ``*Attention`` module owns directly (BERT's self-attention
    ``dropout`` child, Llama's float ``attention_dropout``), not the output dropouts of its sub-modules."""
    for sub in model.modules():
        if "attention" not in type(sub).__name__.lower():
            continue
        for key, value in list(vars(sub).items()):
            if key in ("dropout", "attention_dropout") and isinstance(value, float):
                setattr(sub, key, float(p))
        for child in sub.children():
            if isinstance(child, torch.nn.modules.dropout._DropoutNd):
                child.p = float(p)


def build_hf_backbone(source: dict, pretrained: bool, dropout: Optional[float] = None,
                      attention_dropout: Optional[float] = None) -> torch.nn.Module:
    """An HF model in fp32. ``pretrained=False`` builds it from ``source["config"]`` (random init,
    weights come from a saved run). Text encoders drop their pooler: our pooling replaces it, and
    unused parameters would break DDP and waste optimizer state."""
    auto_cls = _auto_class(source["auto_class"])
    config = hf_config(source)
    if dropout is not None:
        override_config_dropout(config, dropout)
    if attention_dropout is not None:
        override_config_dropout(config, attention_dropout, ATTENTION_DROPOUT_KEYS)
    extra = _init_kwargs(auto_cls, config, {"add_pooling_layer": False}) if source["auto_class"] == "AutoModel" else {}
    with quiet_hf():
        if not pretrained:
            model = auto_cls.from_config(config, dtype=torch.float32, **extra,
                                         **({"trust_remote_code": True} if source.get("trust_remote_code") else {}))
        else:
            try:
                model, info = from_hub(auto_cls.from_pretrained, source["name_or_path"], source, config=config,
                                       dtype=torch.float32, output_loading_info=True, **extra)
            except OSError as err:  # a local folder without (readable) weights
                raise ModelLoadError(f"Cannot load weights from {source['name_or_path']!r}: "
                                     f"{str(err).strip().splitlines()[0]}") from None
            missing = sorted(info.get("missing_keys", []))
            if missing:
                warnings.warn(f"{source['name_or_path']}: {len(missing)} backbone weights were not in the "
                              f"checkpoint and are randomly initialised, e.g. {missing[:3]}", stacklevel=2)
    source["config"] = model.config.to_dict()
    return model.float()


def hf_file_reader(name_or_path: str, source: dict):
    """``read(relpath) -> text | None`` over a local folder or the HF cache (never raises)."""
    offline: list[bool] = []  # probe the hub once per reader, only if a hub id needs it

    def read(rel: str) -> Optional[str]:
        local = Path(name_or_path) / rel
        if local.is_file():
            return local.read_text()
        if Path(name_or_path).is_dir():
            return None
        if not offline:
            offline.append(not hub_reachable())
        try:
            from transformers.utils import cached_file
            with quiet_hf():
                path = cached_file(name_or_path, rel, revision=source.get("revision"), local_files_only=offline[0],
                                   _raise_exceptions_for_missing_entries=False,
                                   _raise_exceptions_for_connection_errors=False)
            return Path(path).read_text() if path else None
        except Exception:  # noqa: BLE001 - optional metadata; absence is the normal case
            return None
    return read


def auto_pooling(source: dict, config) -> str:
    """``pooling: auto``: the model's own sentence-transformers pooling, else by architecture."""
    return sentence_transformers_pooling(hf_file_reader(source["name_or_path"], source)) or default_pooling(config)


def load_tokenizer(source: dict, where: Optional[str] = None):
    """The model's tokenizer; causal LMs without a pad token pad with eos (the mask hides it)."""
    from transformers import AutoTokenizer
    where = where or source["name_or_path"]
    try:
        with quiet_hf():
            tok = from_hub(AutoTokenizer.from_pretrained, where, source)
    except ModelLoadError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise ModelLoadError(f"Cannot load a tokenizer for {where!r}: {str(err).splitlines()[0] if str(err) else err!r}. "
                             f"A text model folder needs its tokenizer files (tokenizer.json or vocab files).") from None
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(f"The tokenizer of {where!r} has neither a pad nor an eos token to pad batches with.")
        tok.pad_token = tok.eos_token
    return tok


def hf_image_spec(source: dict, config, size_default: int) -> ImageSpec:
    """Image preprocessing from ``preprocessor_config.json`` (mean/std/size), else config.image_size and [-1, 1]."""
    import json
    text = hf_file_reader(source["name_or_path"], source)("preprocessor_config.json")
    pc = json.loads(text) if text else {}
    size = pc.get("size", getattr(config, "image_size", size_default))
    if isinstance(size, dict):
        size = size.get("shortest_edge") or size.get("height") or size_default
    if isinstance(size, (list, tuple)):
        size = size[0]
    mean = tuple(pc.get("image_mean", (0.5, 0.5, 0.5)))
    std = tuple(pc.get("image_std", (0.5, 0.5, 0.5)))
    return ImageSpec(size=int(size), mean=mean, std=std)
