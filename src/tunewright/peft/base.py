"""The contract every method keeps, and the adapter lifecycle built on it.

A method is one module (lora, adalora, prompt, ia3, adapter, bitfit) that declares a ``Method``
(method.py) whose ``apply(model, cfg) -> Plan`` does:

1. inject: add its parameters to ``model.backbone``, through peft (``wrap_peft``: the backbone
   becomes a ``peft.PeftModel``, so names stay under ``backbone.`` and ``head.`` stays ours) or
   through tunewright's own layers (layers.py);
2. choose what trains by a rule on names (``train_only``): its own parameters (one regex), the
   head when ``peft.train_head``, and the existing parameters that were trainable before it ran:
   ``apply_method`` freezes the base first unless the strategy's Plan says it chose them
   (``Plan.chose_parameters``: so ``strategy: partial`` + ``method: lora`` trains both);
3. return a Plan: the method's LR (``<method>.lr``) as a multiple of ``train.lr`` for those
   parameters, and its callbacks.

The lifecycle, for every method (each function says where one cannot)::

    save_adapter(model, dir)         dir/adapter/   adapter_config.json + adapter_model.safetensors
                                                     (peft's format; tunewright_adapter.json says how to rebuild)
                                     dir/head.safetensors   the head, and whatever else trained outside the adapter
    load_adapter(model, dir, name)   onto a base model; another call adds another named adapter beside it
    set_adapter(model, name)         switch the active adapter, and its head with it
    merge(model) / unmerge(model)    fold the active adapter into the base weights, and back
    merge_report(model, batch)       merge, and measure the largest |logit| change it caused
    merged_model(model)              a plain TaskModel with the adapter folded in (for export)

Why the head travels with the adapter: a reloaded peft model otherwise gets a fresh random head
(peft issues #577, #1070).

Nothing here knows a method by name: where one differs, base.py calls the hook its declaration
gives (``restore_config``, ``adapter_names``, ``inject``, ``own_pattern``; method.py).
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ConfigError, MethodError, ModelLoadError, blame
from .adapter_info import FORMAT, INFO, read_info, saved_method as _saved_method
from ..training.plan import Plan
from .layers import AdapterLayer, LoraLayer

ADAPTER_DIR, HEAD_FILE = "adapter", "head.safetensors"
PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."          # how peft names weights in adapter_model.safetensors


# ---- 1. inject ---------------------------------------------------------------------------------

def is_hf(model) -> bool:
    return model.source.get("type") == "hf"


def is_peft(model) -> bool:
    from peft import PeftModel
    return isinstance(model.backbone, PeftModel)


def peft_task_type(model) -> Optional[str]:
    """peft's task type for our backbone: we keep our own head, so encoders are FEATURE_EXTRACTION."""
    if model.task == "causal_lm":
        return "CAUSAL_LM"
    return "FEATURE_EXTRACTION" if is_hf(model) and model.modality == "text" else None


def wrap_peft(model, peft_config, name: str) -> None:
    """Add a peft adapter named ``name`` to ``model.backbone`` (wrapping it on first use) and activate it."""
    from peft import get_peft_model
    if is_peft(model):
        model.backbone.add_adapter(name, peft_config)
        model.backbone.set_adapter(name)
    else:
        # peft reads transformers 5's deprecated `is_gradient_checkpointing` alias, and transformers warns on
        # every run; the warning is peft's to fix, not the user's, so it is not shown.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model.backbone = get_peft_model(model.backbone, peft_config, adapter_name=name)


def linear_like(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D  # GPT-2's transposed linear
    return isinstance(module, (nn.Linear, Conv1D))


def module_names(root: nn.Module, keep) -> list[str]:
    return [n for n, m in root.named_modules() if n and keep(m)]


def is_regex(targets: list[str]) -> bool:
    return len(targets) == 1 and bool(re.search(r"[\\\[\]().*+?|^$]", targets[0]))


def match_targets(root: nn.Module, targets: list[str], keep, what: str) -> list[str]:
    """Module paths under ``root`` that ``targets`` names, by peft's rules: a name matches a module
    whose path equals it or ends with ``.name``; a single target with regex characters is a regex
    that must match the whole path. Every target must match something, else a ConfigError lists
    the names there are (peft says only "not found", issues #1206, #1959)."""
    names = module_names(root, keep)
    if is_regex(targets):
        rx = re.compile(targets[0])
        found = [n for n in names if rx.fullmatch(n)]
        missing = [] if found else targets
    else:
        found = [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        short = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise ConfigError(f"{what}: {', '.join(map(repr, missing))} matches no module. Names of the {len(names)} "
                          f"modules that can be targeted: {', '.join(short)} (full paths such as "
                          f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}).")
    return found


def replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


# ---- 2. what trains, and at what LR -------------------------------------------------------------

def flags(model: nn.Module) -> dict[int, bool]:
    """requires_grad per parameter object, taken before injection (injection keeps the objects)."""
    return {id(p): p.requires_grad for p in model.parameters()}


def train_only(model, cfg, own: str, before: dict[int, bool]) -> list[str]:
    """Freeze everything except: parameters whose name matches ``own`` (the method's), the head
    (``peft.train_head``), and the existing parameters that trained ``before`` injection. Those are what
    a strategy that selects parameters (partial, feature_extraction) chose; after a strategy that lets
    everything train, ``apply_method`` has frozen the base, so the method decides alone. Returns the
    method's names."""
    rule = re.compile(own)
    mine = []
    for name, p in model.named_parameters():
        if rule.search(name):
            p.requires_grad_(True)
            mine.append(name)
        elif name.startswith("head."):
            p.requires_grad_(bool(cfg.peft.train_head))
        else:
            p.requires_grad_(before.get(id(p), False))
    if not mine:
        raise MethodError(f"method: {cfg.method} added no trainable parameter to this model (rule {own!r}).")
    return mine


def method_plan(model, cfg, mine: list[str], lr: float, callbacks: Iterable = ()) -> Plan:
    """The method's parameters and the head train at ``lr``; the Plan says so as a multiple of train.lr."""
    scale = lr / cfg.train.lr
    names = set(mine) | {n for n, p in model.named_parameters() if n.startswith("head.") and p.requires_grad}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    note = (f"{cfg.method}: {sum(dict(model.named_parameters())[n].numel() for n in mine):,} own parameters; "
            f"{trainable:,} of {total:,} train ({100 * trainable / max(total, 1):.2f}%) at lr {lr:g}")
    return Plan(lr_scale={n: scale for n in names}, callbacks=list(callbacks), notes=[note])


def remap_names(plan: Plan, before: dict[int, str], model: nn.Module) -> None:
    """Injection renames wrapped parameters (``x.weight`` -> ``x.base_layer.weight``): carry a
    strategy's per-name LR multiples over to the new names, by parameter identity."""
    now = {id(p): n for n, p in model.named_parameters()}
    renamed = {old: now[i] for i, old in before.items() if i in now}
    plan.lr_scale = {renamed.get(k, k): v for k, v in plan.lr_scale.items()}


# ---- 3. save and load ---------------------------------------------------------------------------

def own_layers(model) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.backbone.named_modules() if isinstance(m, (LoraLayer, AdapterLayer))]


def file_key(name: str, adapter: str) -> str:
    """``backbone.x.lora_A.default.weight`` -> peft's ``base_model.model.x.lora_A.weight``."""
    return PEFT_PREFIX + name.removeprefix("backbone.").replace(f".{adapter}.", ".")


def _atomic_dir(final: Path, fill) -> None:
    """Write a folder under a temp name, then swap it in: a crash never leaves half an adapter."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_adapter(model, out_dir, method: str, name: str, module: str, options: dict | None = None,
                 own: str | None = None) -> dict:
    """Write ``out_dir/adapter/`` and ``out_dir/head.safetensors``; returns what the model meta records.

    ``method``/``module``/``options`` are written to tunewright_adapter.json so load_adapter can rebuild
    the same layers; ``own`` is the method's name rule (own backends: which parameters are the adapter).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend = "peft" if is_peft(model) else "tunewright"
    adapter_keys: set[str] = set()

    def fill(tmp: Path) -> None:
        if backend == "peft":
            staging = tmp / "peft"
            model.backbone.save_pretrained(str(staging), selected_adapters=[name])
            src = staging if (staging / PEFT_CONFIG).is_file() else staging / name  # peft nests named adapters
            for f in src.iterdir():
                if f.is_file():
                    shutil.move(str(f), tmp / f.name)
            shutil.rmtree(staging)
            adapter_keys.update(n for n, _ in model.named_parameters() if f".{name}." in n and n.startswith("backbone.")
                                and _is_adapter_param(n))
        else:
            rule = re.compile(own)
            state = {n: p for n, p in model.named_parameters() if rule.search(n)}
            adapter_keys.update(state)
            save_file({file_key(n, name): p.detach().contiguous().cpu() for n, p in state.items()},
                      str(tmp / PEFT_WEIGHTS), metadata={"format": "pt"})
            peft_cfg = (options or {}).get("peft_config")
            (tmp / PEFT_CONFIG).write_text(json.dumps(peft_cfg or {"tunewright_method": method, **(options or {})},
                                                      indent=2))
        info = {"format": FORMAT, "method": method, "module": module, "backend": backend, "adapter_name": name,
                "options": options or {}}
        (tmp / INFO).write_text(json.dumps(info, indent=2))

    _atomic_dir(out / ADAPTER_DIR, fill)
    # The head, anything else that trained outside the adapter (a strategy's layers), and the buffers
    # (BatchNorm running statistics move in training even when the weights are frozen).
    extra = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters()
             if n.startswith("head.") or (p.requires_grad and n not in adapter_keys and not _is_adapter_param(n))}
    persistent = set(model.state_dict())
    extra.update({n: b.detach().contiguous().cpu() for n, b in model.named_buffers()
                  if n in persistent and b.is_floating_point()})
    tmp_head = out / f".{HEAD_FILE}.tmp"
    save_file(extra, str(tmp_head), metadata={"format": "pt"})
    os.replace(tmp_head, out / HEAD_FILE)
    return {"method": method, "backend": backend, "adapter_name": name, "dir": ADAPTER_DIR, "head": HEAD_FILE}


def _is_adapter_param(name: str) -> bool:
    """Any adapter's parameter, whichever method and name: never part of head.safetensors. The pattern is
    the union of the methods' declared ``adapter_pattern``s (registry.ADAPTER_PARAM)."""
    from .registry import is_adapter_param
    return is_adapter_param(name)


def _adapter_dir(path) -> Path:
    """Accept a run folder, its model/ folder, or the adapter/ folder itself."""
    p = Path(path)
    for cand in (p, p / ADAPTER_DIR, p / "model" / ADAPTER_DIR):
        if (cand / INFO).is_file():
            return cand
    raise ModelLoadError(f"No saved adapter under {p} (looked for {INFO} in it, in {ADAPTER_DIR}/ and in "
                         f"model/{ADAPTER_DIR}/).")


def beside(model, key: str, make):
    """State that belongs with ``model`` but not in it, created by ``make()`` on first use. Kept in the
    model object's own ``__dict__``, not as a submodule or buffer: the model's state dict, parameters and
    checkpoints stay exactly the base's plus its adapters, while ``copy.deepcopy(model)`` still copies it
    (a weak-keyed table beside the model would lose it on copy)."""
    return vars(model).setdefault(f"_tw_{key}", make())


def heads(model) -> dict[str, nn.Module]:
    """One head per adapter name, kept beside the model (not inside it: its state dict stays the model's)."""
    return beside(model, "heads", dict)


def _load_head(model, folder: Path, name: str, activate: bool) -> None:
    state = load_file(str(folder / HEAD_FILE))
    head_state = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    rest = {k: v for k, v in state.items() if not k.startswith("head.")}
    if head_state:
        head = copy.deepcopy(model.head)
        try:
            head.load_state_dict(head_state, strict=True)
        except RuntimeError as err:
            raise ModelLoadError(f"{folder / HEAD_FILE}: the adapter's head does not fit this model's head: "
                                 f"{str(err).splitlines()[-1].strip()}") from None
        heads(model)[name] = head
        if activate:
            model.head = head
    if rest:  # trained outside the adapter (a strategy's layers), and buffers: shared by every adapter here
        missing = [k for k in rest if k not in model.state_dict()]
        if missing:
            raise ModelLoadError(f"{folder / HEAD_FILE}: parameters {missing[:3]} are not in the model.")
        model.load_state_dict(rest, strict=False)


def load_adapter(model, path, name: Optional[str] = None, *, activate: bool = True,
                 trainable: bool = False) -> str:
    """Load a saved adapter and its head onto ``model`` (the same base it was trained on).

    ``path``: a run folder, its model/ folder or the adapter folder. ``name`` defaults to the name it
    was trained under. A model that already holds adapters gets this one beside them. Returns the name.
    """
    folder = _adapter_dir(path)
    info = read_info(folder)
    name = name or info["adapter_name"]
    if name in adapters(model):
        raise MethodError(f"the model already holds an adapter named {name!r}; pass another name.")
    # Options that rebuild no adapter on this model make peft, torch or the method raise what they raise.
    with blame(folder / INFO, "the adapter it describes cannot be rebuilt on this model"):
        return _load_adapter(model, folder, info, name, activate, trainable)


def _load_adapter(model, folder: Path, info: dict, name: str, activate: bool, trainable: bool) -> str:
    model_dir = folder.parent
    previous = active_adapter(model)
    if info["backend"] == "peft":
        from peft import PeftModel
        if is_peft(model):
            model.backbone.load_adapter(str(folder), adapter_name=name, is_trainable=trainable)
        else:
            if adapters(model):
                raise MethodError("this model holds tunewright-layer adapters; a peft adapter cannot join them.")
            model.backbone = PeftModel.from_pretrained(model.backbone, str(folder), adapter_name=name,
                                                       is_trainable=trainable)
    else:
        method = _saved_method(info)
        method.inject(model, info["options"], name)
        state = load_file(str(folder / PEFT_WEIGHTS))
        rule = re.compile(method.own_pattern(name))
        params = {n: p for n, p in model.named_parameters() if rule.search(n)}
        want = {file_key(n, name) for n in params}
        if want != set(state):
            raise ModelLoadError(f"{folder / PEFT_WEIGHTS} does not fit this model: missing "
                                 f"{sorted(want - set(state))[:3]}, unexpected {sorted(set(state) - want)[:3]}.")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[file_key(n, name)])
                p.requires_grad_(trainable)
    if (model_dir / HEAD_FILE).is_file():
        _load_head(model, model_dir, name, activate)
    if activate:
        set_adapter(model, name)
    elif previous is not None:
        set_adapter(model, previous)      # adding layers activates them; the previous adapter stays active
    return name


def restore_saved(model, model_dir) -> bool:
    """Put the weights saved in ``model_dir`` back into ``model`` as it is (the run's best, at the end of
    training): the full state dict if there is one, else the adapter and head. False if nothing is saved."""
    from ..models import load_weights_into
    model_dir = Path(model_dir)
    if (model_dir / "model.safetensors").is_file():
        load_weights_into(model, model_dir / "model.safetensors")
        return True
    if not (model_dir / ADAPTER_DIR / INFO).is_file():
        return False
    info = read_info(model_dir / ADAPTER_DIR)
    name = info["adapter_name"]
    state = load_file(str(model_dir / ADAPTER_DIR / PEFT_WEIGHTS))
    if info["backend"] == "peft":
        from peft import set_peft_model_state_dict
        saved = json.loads((model_dir / ADAPTER_DIR / PEFT_CONFIG).read_text())
        method = _saved_method(info)
        if method.restore_config is not None:     # AdaLoRA: the saved rank pattern, before peft resizes
            method.restore_config(model.backbone.peft_config.get(name), saved)
        # peft's own loader (it knows its special cases: prompt embeddings, AdaLoRA's pruned ranks).
        set_peft_model_state_dict(model.backbone, state, adapter_name=name)
    else:
        rule = re.compile(_saved_method(info).own_pattern(name))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if rule.search(n):
                    p.copy_(state[file_key(n, name)])
    head = load_file(str(model_dir / HEAD_FILE))
    model.load_state_dict(head, strict=False)
    return True


# ---- several adapters ---------------------------------------------------------------------------

def _held_outside_layers(model) -> list[str]:
    """Adapters that no adapter layer holds, as the methods that keep them say (BitFit's ``adapter_names``)."""
    from .registry import METHODS
    return [n for m in METHODS.values() if m.adapter_names is not None for n in m.adapter_names(model)]


def adapters(model) -> list[str]:
    if is_peft(model):
        return list(model.backbone.peft_config)
    names: list[str] = []
    for _, layer in own_layers(model):
        names += [n for n in layer.adapter_names() if n not in names]
    return names or _held_outside_layers(model)


def active_adapter(model) -> Optional[str]:
    if is_peft(model):
        return model.backbone.active_adapter
    for _, layer in own_layers(model):
        return layer.active
    return (_held_outside_layers(model) or [None])[0]


def set_adapter(model, name: str) -> None:
    """Make ``name`` the active adapter (its head too, when it came with one). Trainability is untouched."""
    if name not in adapters(model):
        raise MethodError(f"no adapter named {name!r}; the model holds {adapters(model)}.")
    before = {id(p): p.requires_grad for p in model.parameters()}
    if is_peft(model):
        model.backbone.set_adapter(name)
    else:
        for _, layer in own_layers(model):
            layer.set_adapter(name if name in layer.adapter_names() else None)
    if name in heads(model):
        device = next(model.backbone.parameters()).device
        model.head = heads(model)[name].to(device).train(model.training)
    for p in model.parameters():
        p.requires_grad_(before.get(id(p), p.requires_grad))


# ---- merge ----------------------------------------------------------------------------------------

def merge(model) -> None:
    """Fold the active adapter into the base weights; the forward then costs what the base costs."""
    if is_peft(model):
        config = model.backbone.active_peft_config
        if config.is_prompt_learning:
            raise MethodError(f"{config.peft_type.value.lower()} adds virtual tokens, not a weight update: there is "
                              f"nothing to merge.")
        model.backbone.merge_adapter()
        return
    for _, layer in own_layers(model):   # bitfit: none, and nothing to merge (it trains the base's own biases)
        layer.merge()


def unmerge(model) -> None:
    if is_peft(model):
        if not model.backbone.active_peft_config.is_prompt_learning:
            model.backbone.unmerge_adapter()
        return
    for _, layer in own_layers(model):
        if isinstance(layer, LoraLayer):
            layer.unmerge()


def can_merge(model) -> bool:
    if is_peft(model):
        return not model.backbone.active_peft_config.is_prompt_learning
    return not any(isinstance(layer, AdapterLayer) for _, layer in own_layers(model))


@torch.no_grad()
def merge_report(model, batch: dict) -> dict:
    """Merge, and say how far the logits moved on ``batch``: the largest absolute difference between the
    merged and the unmerged model's logits (fp32 rounding only, when all is well)."""
    was_training = model.training
    model.eval()
    before = model(batch).float()
    merge(model)
    after = model(batch).float()
    model.train(was_training)
    return {"max_abs_logit_diff": float((after - before).abs().max()), "max_abs_logit": float(before.abs().max()),
            "batch_size": int(before.shape[0]), "logits_shape": list(before.shape)}


def format_report(report: dict) -> str:
    return (f"drift report: merged vs unmerged, max |logit difference| = {report['max_abs_logit_diff']:.3g} "
            f"on a batch of {report['batch_size']} (largest |logit| {report['max_abs_logit']:.3g})")


def merged_model(model):
    """``model`` with its active adapter folded in and the adapter machinery removed: a plain TaskModel
    that saves and loads with ``method: none``. Changes ``model`` in place and returns it."""
    if is_peft(model):
        if not can_merge(model):
            merge(model)  # raises with the reason
        model.backbone = model.backbone.merge_and_unload()
        return model
    for path, layer in own_layers(model):
        if isinstance(layer, AdapterLayer):
            layer.merge()  # raises with the reason
        layer.merge()
        replace_module(model.backbone, path, layer.base_layer)
    return model
