"""``load_model(cfg, num_labels) -> (TaskModel, preprocessor)``: from a model name to a task model.

``cfg.model.name`` is resolved in this order:

1. ``package.module:function``: a user factory. **This imports the module and runs the function**
   (``fn(**cfg.model.factory_kwargs)``), so only name code you trust. It must return an nn.Module
   mapping ``inputs`` (or ``pixel_values`` for image tasks) to features ``(B, H)`` (tunewright adds
   the linear head; see ``backbones._feature_dim`` for how H is found) or, with
   ``factory_outputs: logits``, to the task's logits (used as is).
2. a packaged short name (``tunewright.assets.models``): ``minilm``, ``smollm2-135m``, ``efficientnet-lite0``;
3. an existing local folder in HF format (``config.json`` + weights + tokenizer files);
4. something that looks like a path (starts with ``.``, ``~`` or ``/``, more than one ``/``, or
   characters a hub id cannot have) -> ModelLoadError naming the missing path;
5. otherwise a hub id (``bert-base-uncased``, ``org/name``), loaded from the local HF cache or
   the hub; with neither, one ModelLoadError says so. An ``org/name`` id is also a valid relative
   path, which is why it is tried as a hub id only after no such folder exists.

``trust_remote_code`` comes only from the config (default False). The backbone is fp32. The head
is initialised from torch's global RNG: the caller seeds before calling (run.prepare does).

The preprocessor is what the data package needs to turn raw examples into batches: an HF
tokenizer for text models (pad = eos when the model has no pad token), an ``ImageSpec`` for image
models, None for tensor (tabular) factories.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from torch import nn

from tunewright.config.schema import uses_method
from tunewright.errors import ModelLoadError
from tunewright.models import hf
from tunewright.models.backbones import FACTORY_RE, build_efficientnet, build_factory
from tunewright.models.image_spec import ImageSpec
from tunewright.models.task_model import TaskModel, make_head, override_dropout

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")  # name or org/name
TEXT_TASKS = ("classification", "multilabel", "regression")


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "~", "/", "\\")) or not HUB_ID_RE.match(name)


def attention_dropout(cfg) -> Optional[float]:
    """``model.attention_dropout`` resolved: ``auto`` is 0 when a PEFT method trains, else None (keep)."""
    value = cfg.model.attention_dropout
    if value == "auto":
        return 0.0 if uses_method(cfg) else None
    return None if value is None else float(value)


def resolve_source(cfg) -> dict:
    """``cfg.model`` -> the JSON-able recipe of the backbone (see hf.py / backbones.py)."""
    from tunewright.assets.models import MODELS
    m, task = cfg.model, cfg.task
    name = m.name.strip()
    common = {"dropout": m.dropout, "attention_dropout": attention_dropout(cfg)}
    if FACTORY_RE.match(name) and not Path(name).exists():
        return {"type": "factory", "target": name, "kwargs": dict(m.factory_kwargs or {}),
                "outputs": m.factory_outputs, **common}
    hf_common = {"type": "hf", "revision": m.revision, "trust_remote_code": bool(m.trust_remote_code),
                 "auto_class": "AutoModelForCausalLM" if task == "causal_lm" else "AutoModel",
                 "vision": task == "image_classification", "config": None, **common}
    if name in MODELS:
        asset = MODELS[name]
        if asset.kind == "vision":
            return {"type": "efficientnet", "variant": name, "packaged": name, **common}
        return {**hf_common, "name_or_path": str(asset.prepare()), "packaged": name}
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"Model folder {str(path)!r} has no config.json: it is not a Hugging Face model "
                                 f"folder (save one with model.save_pretrained(folder)).")
        return {**hf_common, "name_or_path": str(path.resolve())}
    if path.exists():
        raise ModelLoadError(f"model.name {name!r} is a file; expected a model folder, a packaged name "
                             f"({', '.join(MODELS)}), a hub id or package.module:function.")
    if looks_like_path(name):
        raise ModelLoadError(f"Model path {name!r} does not exist (resolved to {str(path.resolve())!r}). "
                             f"Packaged models: {', '.join(MODELS)}.")
    return {**hf_common, "name_or_path": name}


def _check_modality(source: dict, task: str, backbone: nn.Module, name: str) -> None:
    if source["type"] == "efficientnet" and task != "image_classification":
        raise ModelLoadError(f"{name!r} is an image model; task {task!r} needs a text model "
                             f"(e.g. minilm). Use task: image_classification.")
    if source["type"] == "factory" and task == "causal_lm":
        raise ModelLoadError(f"task causal_lm needs a Hugging Face causal LM, not the factory {name!r}.")
    if source["type"] == "hf":
        config = backbone.config
        is_text = getattr(config, "vocab_size", None) is not None
        if source.get("vision") and is_text:
            raise ModelLoadError(f"{name!r} is a text model; task image_classification needs an image model "
                                 f"(efficientnet-lite0, an HF vision folder or a factory).")
        if not source.get("vision") and not is_text:
            raise ModelLoadError(f"{name!r} is not a text model (its config has no vocab_size); "
                                 f"task {task!r} needs one. Use task: image_classification for images.")


def _hidden_size(backbone: nn.Module) -> int:
    config = backbone.config
    for key in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    sizes = getattr(config, "hidden_sizes", None)  # ResNet/ConvNeXt-style configs
    if sizes:
        return int(sizes[-1])
    return backbone.get_input_embeddings().embedding_dim


def build_task_model(source: dict, *, task: str, num_labels: Optional[int], pooling: Optional[str],
                     head_dropout: float, pretrained: bool, name: str = "") -> tuple[TaskModel, Any]:
    """Backbone from ``source`` (pretrained, or random init for a saved run) + a fresh head.

    Returns ``(model, extra)`` where extra is the factory module's ``image_spec`` attribute or None.
    ``pooling`` may be "auto" only when ``pretrained`` (it is resolved once and then saved).
    """
    kind, dropout, extra = source["type"], source.get("dropout"), None
    if kind == "hf":
        backbone = hf.build_hf_backbone(source, pretrained=pretrained, dropout=dropout,
                                        attention_dropout=source.get("attention_dropout"))
        _check_modality(source, task, backbone, name)
        hidden = _hidden_size(backbone)
        modality = "image" if source.get("vision") else "text"
    elif kind == "efficientnet":
        _check_modality(source, task, None, name)
        backbone, hidden = build_efficientnet(source, pretrained=pretrained)
        modality = "image"
    elif kind == "factory":
        _check_modality(source, task, None, name)
        backbone, hidden = build_factory(source)
        modality = "image" if task == "image_classification" else "tensor"
        extra = getattr(backbone, "image_spec", None)
    else:
        raise ModelLoadError(f"Unknown backbone type {kind!r} in a saved model (this tunewright knows hf, "
                             f"efficientnet, factory).")
    if dropout is not None:
        override_dropout(backbone, dropout)
        if kind == "hf" and source.get("attention_dropout") is not None:   # the module-level pass above reset it
            hf.set_attention_module_dropout(backbone, source["attention_dropout"])
    if modality == "text":
        if pooling in (None, "auto"):
            pooling = hf.auto_pooling(source, backbone.config)
    else:
        pooling = None
    if task == "causal_lm":
        num_labels = backbone.config.vocab_size  # logits are over the vocabulary
    elif task == "regression":
        num_labels = 1
    if kind == "factory" and source.get("outputs") == "logits":
        head: nn.Module = nn.Identity()
    else:
        try:
            head = make_head(task, hidden, num_labels, head_dropout)
        except ValueError as err:
            raise ModelLoadError(f"{name!r}: {err}") from None
    model = TaskModel(backbone, head, task=task, num_labels=num_labels, modality=modality,
                      pooling=pooling, hidden_size=hidden, source=source, name=name)
    return model, extra


def make_preprocessor(model: TaskModel, extra: Any, image_size: int, tokenizer_dir: Optional[str] = None):
    """Tokenizer (text), ImageSpec (image) or None (tensor) for ``model``."""
    src = model.source
    if model.modality == "text":
        return hf.load_tokenizer(src, where=tokenizer_dir)
    if model.modality == "tensor":
        return None
    if src["type"] == "efficientnet":
        # Trained at 224. Its static "same" padding was computed for 224, and it pads the same for
        # every side that is a multiple of 32 (every stride-2 layer then sees an even side), so
        # smaller inputs such as 128 (3x cheaper on a CPU) run the network as designed.
        if image_size % 32:
            raise ModelLoadError(f"data.image_size: {image_size} is not allowed for {src.get('variant')}; use a "
                                 f"multiple of 32 (it was trained at 224).")
        return ImageSpec.preset("minus_one_to_one", size=image_size)
    if src["type"] == "hf":
        return hf.hf_image_spec(src, model.backbone.config, image_size)
    # An image factory: its `image_spec` attribute, else pixels in [0, 1] at data.image_size.
    return extra if isinstance(extra, ImageSpec) else ImageSpec.preset("none", size=image_size)


def load_tokenizer(cfg):
    """``cfg``'s text model's tokenizer alone, without loading its weights (what load_model's preprocessor is)."""
    return hf.load_tokenizer(resolve_source(cfg))


def load_model(cfg, num_labels: Optional[int]) -> tuple[TaskModel, Any]:
    """The task model for ``cfg`` (pretrained backbone + fresh head) and its preprocessor."""
    source = resolve_source(cfg)
    model, extra = build_task_model(source, task=cfg.task, num_labels=num_labels, pooling=cfg.model.pooling,
                                    head_dropout=cfg.model.head_dropout, pretrained=True, name=cfg.model.name)
    return model, make_preprocessor(model, extra, cfg.data.image_size)
