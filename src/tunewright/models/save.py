"""Save a run's TaskModel so it reloads anywhere, without the pretrained weights or a network.

    <dir>/model.safetensors      the full TaskModel state dict (backbone.* and head.*)
    <dir>/tunewright_model.json  task, labels, pooling, modality, image spec, and the backbone's
                                 *source* with its HF config (enough to rebuild it from config)
    <dir>/tokenizer files        text models only (tokenizer.json, tokenizer_config.json, ...)

A run with a parameter-efficient method saves only its adapter and head instead of the full state
dict (``adapter=``, see ``tunewright.peft``): ``<dir>/adapter/`` in peft's format and
``<dir>/head.safetensors``. Reloading then builds the backbone from its pretrained source and puts
the adapter on it (``adapter_loader=``). ``full=True`` writes the full state dict as well: needed
when the pretrained source cannot rebuild the same base (a user factory's random init).

Weights are safetensors only (no pickle, ever). Tied tensors (Llama's lm_head = embed_tokens)
share storage, which safetensors refuses; ``safetensors.torch.save_model`` writes each shared
tensor once and ``load_model`` restores the tie. Each file is written to a temp name and renamed,
and the JSON goes last, so a crash mid-save leaves the previous complete model, never a mix.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from tunewright.errors import CheckpointError, ModelLoadError, blame
from tunewright.filemode import umask_mode
from tunewright.models.image_spec import ImageSpec
from tunewright.models.task_model import TaskModel
from tunewright.config.secrets import redact

WEIGHTS = "model.safetensors"
META = "tunewright_model.json"
FORMAT_VERSION = 1


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _jsonable(obj: Any) -> Any:
    """HF config dicts hold torch dtypes and tuples; JSON wants plain values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.dtype):
        return str(obj).removeprefix("torch.")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def save_run_model(model: TaskModel, out_dir, cfg_dict: Optional[dict], label_names: Optional[list],
                   preprocessor: Any = None, adapter: Optional[Callable[[Path], dict]] = None,
                   full: bool = True) -> Path:
    """Write ``model`` (+ tokenizer or image spec) to ``out_dir``; returns the folder.

    ``adapter(out_dir) -> dict`` writes a PEFT run's adapter and head and returns what the meta records;
    ``full`` says whether the full state dict is written too (always, when there is no adapter).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = full or adapter is None
    if full:
        _atomic(out / WEIGHTS, lambda tmp: st_save_model(model, tmp, metadata={"format": "pt"}))
    elif (out / WEIGHTS).exists():
        (out / WEIGHTS).unlink()          # a stale full copy must not shadow the adapter on reload
    adapter_meta = adapter(out) if adapter is not None else None
    tokenizer = preprocessor is not None and hasattr(preprocessor, "save_pretrained")
    if tokenizer:
        preprocessor.save_pretrained(str(out))
    spec = preprocessor if isinstance(preprocessor, ImageSpec) else None
    meta = {
        "format": "tunewright-model", "version": FORMAT_VERSION,
        "model_name": model.name, "task": model.task, "num_labels": model.num_labels,
        "label_names": list(label_names) if label_names is not None else None,
        "modality": model.modality, "pooling": model.pooling, "hidden_size": model.hidden_size,
        "head_dropout": _head_dropout(model),
        "source": _without_secrets(model.source),   # backbone recipe incl. the HF config dict
        "image_spec": spec.to_dict() if spec else None,
        "tokenizer": tokenizer,
        "weights": "full" if full else "adapter",
        "weights_bytes": (out / WEIGHTS).stat().st_size if full else None,
        "adapter": adapter_meta,
        "config": redact(cfg_dict),
    }
    _atomic(out / META, lambda tmp: Path(tmp).write_text(json.dumps(_jsonable(meta), indent=2)))
    return out


def _without_secrets(source: dict) -> dict:
    """The source recipe with a factory's literal secrets redacted (config/secrets.py); an HF config's own
    keys (`tokenizer_class`, `pad_token`) are not secrets and stay as they are."""
    return {**source, "kwargs": redact(source["kwargs"])} if "kwargs" in source else source


def _head_dropout(model: TaskModel) -> float:
    drops = [m.p for m in model.head.modules() if isinstance(m, torch.nn.Dropout)]
    return float(drops[0]) if drops else 0.0


def read_meta(model_dir) -> dict:
    path = Path(model_dir) / META
    if not Path(model_dir).is_dir():
        raise ModelLoadError(f"Saved model folder {str(model_dir)!r} does not exist.")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing: {model_dir} is not a tunewright model folder "
                             f"(save_run_model writes it).") from None
    except (ValueError, RecursionError) as err:     # RecursionError: [[[[...
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {err}).") from None
    if not isinstance(meta, dict) or meta.get("format") != "tunewright-model":
        raise ModelLoadError(f"{path} is not a tunewright model description.")
    _check_meta(meta, path)
    return meta


# What each key of tunewright_model.json holds (None: it may be null). Keys written by later versions
# are ignored; the ones here are refused, by name, unless they hold what save_run_model writes.
_META_TYPES: dict[str, tuple] = {
    "version": (int,), "model_name": (str,), "task": (str,), "num_labels": (int, None),
    "label_names": (list, None), "modality": (str, None), "pooling": (str, None), "hidden_size": (int, None),
    "head_dropout": (int, float), "source": (dict,), "image_spec": (dict, None), "tokenizer": (bool,),
    "weights": (str,), "weights_bytes": (int, None), "adapter": (dict, None), "config": (dict, None),
}
_META_REQUIRED = ("task", "num_labels", "pooling", "source")


def _check_meta(meta: dict, path: Path) -> None:
    from tunewright.config.schema import POOLINGS, TASKS
    for key in _META_REQUIRED:
        if key not in meta:
            raise ModelLoadError(f"{path}: key {key!r} is missing.")
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if key not in meta or (value is None and None in types):
            continue
        if isinstance(value, bool) != (bool in types) or not isinstance(value, tuple(t for t in types if t)):
            names = " or ".join("null" if t is None else t.__name__ for t in types)
            raise ModelLoadError(f"{path}: key {key!r} is {value!r:.80}, expected {names}.")
    if meta.get("version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ModelLoadError(f"{path}: version {meta['version']} was written by a newer tunewright; this one reads "
                             f"version <= {FORMAT_VERSION}.")
    bad = (("task", meta["task"] not in TASKS, f"one of {', '.join(TASKS)}"),
           ("weights", meta.get("weights", "full") not in ("full", "adapter"), "full or adapter"),
           ("pooling", meta["pooling"] is not None and meta["pooling"] not in POOLINGS, f"null or one of {POOLINGS}"),
           ("num_labels", meta["num_labels"] is not None and meta["num_labels"] < 1, "a count >= 1 or null"),
           ("label_names", not all(isinstance(n, str) for n in meta.get("label_names") or []), "a list of names"),
           ("head_dropout", not 0 <= meta.get("head_dropout", 0.0) < 1, "a probability in [0, 1)"),
           ("source", not isinstance(meta["source"].get("type"), str), "a mapping with a 'type'"),
           ("image_spec", meta.get("image_spec") is not None and not _image_spec_ok(meta["image_spec"]),
            "{size: pixels, mean: [r, g, b], std: [r, g, b]}"))
    for key, wrong, expected in bad:
        if wrong:
            raise ModelLoadError(f"{path}: key {key!r} is {meta.get(key)!r:.80}, expected {expected}.")


def _image_spec_ok(d: dict) -> bool:
    def rgb(v, positive):
        return isinstance(v, list) and len(v) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (x > 0 or not positive)
            for x in v)
    size = d.get("size")
    return type(size) is int and size >= 1 and rgb(d.get("mean"), False) and rgb(d.get("std"), True)


def load_weights_into(model: torch.nn.Module, weights_path) -> None:
    """Load a ``model.safetensors`` written by ``save_run_model`` into ``model`` (strict, ties restored)."""
    path = Path(weights_path)
    if not path.is_file():
        raise CheckpointError(f"Weights file {path} is missing.")
    try:
        missing, unexpected = st_load_model(model, str(path), strict=False)
    except SafetensorError as err:
        raise CheckpointError(f"Weights file {path} is truncated or corrupt ({err}).") from None
    except RuntimeError as err:  # shape mismatch: torch lists one "size mismatch for <name>: ..." line each
        lines = [ln.strip() for ln in str(err).splitlines() if "size mismatch" in ln] or [str(err).splitlines()[0]]
        raise CheckpointError(f"Weights file {path} does not match the model: {'; '.join(lines[:3])}") from None
    if missing or unexpected:
        hint = ""
        if any("lora_" in k or "adapter" in k or "prompt" in k for k in list(unexpected) + list(missing)):
            hint = (" The run used a parameter-efficient method: apply it to the rebuilt model before loading "
                    "(load_run_model(dir, before_load=...)).")
        raise CheckpointError(f"Weights file {path} does not match the model: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}.{hint}")


def _pretrained_source(source: dict) -> dict:
    """The saved recipe, with a packaged model's path found again (site-packages or cache may have moved)."""
    source = dict(source)
    if source.get("type") == "hf" and source.get("packaged"):
        from tunewright.assets.models import get_model_asset
        source["name_or_path"] = str(get_model_asset(source["packaged"]).prepare())
    return source


def load_run_model(model_dir, before_load: Optional[Callable[[TaskModel, dict], Any]] = None,
                   adapter_loader: Optional[Callable[[TaskModel, Path, dict], Any]] = None
                   ) -> tuple[TaskModel, Any, dict]:
    """Rebuild a saved model from its description and load its weights; ``(model, preprocessor, meta)``.

    ``before_load(model, meta)`` runs between rebuilding and loading, e.g. to apply the PEFT
    method the run used, so the parameter names match. A folder that holds only an adapter and a
    head is rebuilt from the pretrained backbone, then ``adapter_loader(model, model_dir, meta)`` puts
    them on it (``tunewright.run.load_run`` passes ``tunewright.peft.load_run_adapter``). A factory
    backbone re-imports and re-runs the user's factory (that runs their code, as at training time).
    The model is returned in eval mode.
    """
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if meta.get("weights") == "adapter":
        if adapter_loader is None:
            raise ModelLoadError(f"{model_dir} holds only a parameter-efficient adapter and its head; load it with "
                                 f"tunewright.run.load_run(run_dir) or tunewright.peft.load_adapter(model, dir).")
        model, extra = _rebuild(meta, model_dir, pretrained=True)
        adapter_loader(model, model_dir, meta)
        model.eval()
        return model, _preprocessor(model, extra, meta, model_dir), meta
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"Weights file {weights} is missing.")
    size = weights.stat().st_size
    if meta.get("weights_bytes") not in (None, size):
        raise CheckpointError(f"Weights file {weights} is truncated or was replaced: {size} bytes, "
                              f"{meta['weights_bytes']} expected.")
    model, extra = _rebuild(meta, model_dir, pretrained=False)
    if before_load is not None:
        before_load(model, meta)
    load_weights_into(model, weights)
    model.eval()
    return model, _preprocessor(model, extra, meta, model_dir), meta


def _rebuild(meta: dict, model_dir: Path, pretrained: bool) -> tuple[TaskModel, Any]:
    """The TaskModel `meta` describes (random init, or the pretrained backbone for an adapter); whatever
    stops it is an error that names the description file, since that is what the user has to look at."""
    from tunewright.models.load import build_task_model
    with blame(model_dir / META, "the model it describes cannot be rebuilt"):
        source = _pretrained_source(meta["source"]) if pretrained else dict(meta["source"])
        return build_task_model(source, task=meta["task"], num_labels=meta["num_labels"], pooling=meta["pooling"],
                                head_dropout=meta.get("head_dropout", 0.0), pretrained=pretrained,
                                name=meta.get("model_name", ""))


def _preprocessor(model: TaskModel, extra: Any, meta: dict, model_dir: Path) -> Any:
    from tunewright.models.load import make_preprocessor
    if meta.get("image_spec"):
        return ImageSpec.from_dict(meta["image_spec"])
    if meta.get("tokenizer"):
        with blame(model_dir / META, "its tokenizer cannot be loaded"):
            return make_preprocessor(model, extra, 224, tokenizer_dir=str(model_dir))
    return None
