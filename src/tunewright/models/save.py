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
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from tunewright.errors import CheckpointError, ModelLoadError
from tunewright.filemode import umask_mode
from tunewright.models.image_spec import ImageSpec
from tunewright.models.task_model import TaskModel

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
        "source": model.source,           # backbone recipe incl. the HF config dict
        "image_spec": spec.to_dict() if spec else None,
        "tokenizer": tokenizer,
        "weights": "full" if full else "adapter",
        "weights_bytes": (out / WEIGHTS).stat().st_size if full else None,
        "adapter": adapter_meta,
        "config": cfg_dict,
    }
    _atomic(out / META, lambda tmp: Path(tmp).write_text(json.dumps(_jsonable(meta), indent=2)))
    return out


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
    except ValueError as err:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {err}).") from None
    if meta.get("format") != "tunewright-model":
        raise ModelLoadError(f"{path} is not a tunewright model description.")
    return meta


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
    from tunewright.models.load import build_task_model

    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if meta.get("weights") == "adapter":
        if adapter_loader is None:
            raise ModelLoadError(f"{model_dir} holds only a parameter-efficient adapter and its head; load it with "
                                 f"tunewright.run.load_run(run_dir) or tunewright.peft.load_adapter(model, dir).")
        model, extra = build_task_model(_pretrained_source(meta["source"]), task=meta["task"],
                                        num_labels=meta["num_labels"], pooling=meta["pooling"],
                                        head_dropout=meta.get("head_dropout", 0.0), pretrained=True,
                                        name=meta.get("model_name", ""))
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
    model, extra = build_task_model(dict(meta["source"]), task=meta["task"], num_labels=meta["num_labels"],
                                    pooling=meta["pooling"], head_dropout=meta.get("head_dropout", 0.0),
                                    pretrained=False, name=meta.get("model_name", ""))
    if before_load is not None:
        before_load(model, meta)
    load_weights_into(model, weights)
    model.eval()
    return model, _preprocessor(model, extra, meta, model_dir), meta


def _preprocessor(model: TaskModel, extra: Any, meta: dict, model_dir: Path) -> Any:
    from tunewright.models.load import make_preprocessor
    if meta.get("image_spec"):
        return ImageSpec.from_dict(meta["image_spec"])
    if meta.get("tokenizer"):
        return make_preprocessor(model, extra, 224, tokenizer_dir=str(model_dir))
    return None
