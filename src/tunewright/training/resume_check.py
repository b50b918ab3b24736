"""Refuse to resume a run whose settings changed in a way that changes the training.

A checkpoint records what made it (`run_record`): the resolved config, a fingerprint of the data,
the library versions, the world size and the global batch. `changed_keys(old, new)` compares two such
records key by key and says, for each difference, whether it matters:

- matters (refused without --force): the model, the method and its options, the strategy and its
  options, the data (config keys and the files' fingerprint), the global batch (batch_size x world
  size per micro-batch, and grad_accum), the LR, the optimizer and schedule and their options, epochs /
  max_steps, the seed, the precision, evaluation and early stopping (they pick the best model), the task.
  Any key not named below as free matters too: a new key is refused until someone decides otherwise.
- free: where and how the run is logged, tracked and shown (tracking, progress, log_every_steps, run_name,
  output_dir), how it uses the machine (num_threads, device, malloc_trim_every, eval_batch_size,
  distributed backend and strategy), checkpointing cadence and retention, the sections of other commands
  (compare, tune, multitask, continual, meta, domain), the options of PEFT methods this run does not use,
  and the world size alone (when the global batch stays the same, the batches are the same rows).
- note only: library versions (numerics may differ in the last bits; the weights still load).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Patterns over the record's flattened keys, with `config.` taken off config keys. The per-rank batch
# size and the world size are free on their own: their product (global_batch.micro), grad_accum and the
# step's global batch are what matter, and those are compared.
FREE = [r"run_name", r"output_dir", r"tracking", r"compare", r"search_space", r"multitask\..*", r"continual\..*",
        r"meta\..*", r"domain\..*", r"train\.(progress|log_every_steps|num_threads|device|malloc_trim_every|"
        r"eval_batch_size|cudnn_attention|batch_size|grad_accum)", r"checkpoint\..*", r"distributed\..*",
        r"world_size", r"global_batch\.(batch_size|world_size)"]
NOTE = [r"versions\..*"]
# PEFT methods' option sections: only the running method's own section matters.
METHOD_SECTIONS = ("lora", "adalora", "prompt_tuning", "prefix_tuning", "adapter", "bitfit", "ia3")


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any
    matters: bool
    why: str = ""

    def __str__(self) -> str:
        return f"{self.key}: {self.old!r} -> {self.new!r}"


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def classify(key: str, old: dict, new: dict) -> tuple[bool, str]:
    """(matters, why) for a flattened record key whose values differ; `old`/`new` are the flattened records."""
    bare = key.removeprefix("config.")
    if any(re.fullmatch(p, key) for p in NOTE):
        return False, "library version: noted"
    if any(re.fullmatch(p, bare) for p in FREE):
        return False, "does not change the training"
    section = bare.split(".")[0]
    if key.startswith("config.") and section in METHOD_SECTIONS and \
            section not in {old.get("config.method"), new.get("config.method")}:
        return False, f"options of {section}, which neither run uses"
    return True, "changes the training"


def changed_keys(old: dict, new: dict) -> list[Change]:
    """Every key whose value differs between two run records (absent on one side counts), sorted, each
    marked whether it matters (see the module docstring)."""
    a, b = flatten(old), flatten(new)
    changes = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            matters, why = classify(key, a, b)
            changes.append(Change(key, va, vb, matters, why))
    return changes


def refusal(changes: list[Change], checkpoint: str) -> str | None:
    """The error text when a change matters, else None."""
    bad = [c for c in changes if c.matters]
    if not bad:
        return None
    lines = "\n".join(f"  {c}" for c in bad)
    return (f"cannot resume from {checkpoint}: these settings differ from the checkpoint's and change the "
            f"training:\n{lines}\nUse the checkpoint's settings, start a new run (another run_name or "
            f"--overwrite), or pass --force to resume anyway.")


def versions() -> dict:
    """The versions that decide the numerics: tunewright, torch, transformers, peft (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    from ..version import __version__
    out = {"tunewright": __version__}
    for name in ("torch", "transformers", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_record(cfg, world: int) -> dict:
    """What a checkpoint records about the run that wrote it (compared on resume by `changed_keys`)."""
    from ..config import to_dict
    from ..config.secrets import redact
    from ..data.fingerprint import data_fingerprint

    t = cfg.train
    return {"config": redact(to_dict(cfg)), "data_fingerprint": data_fingerprint(cfg.data), "versions": versions(),
            "world_size": world,
            "global_batch": {"batch_size": t.batch_size, "world_size": world, "grad_accum": t.grad_accum,
                             "micro": t.batch_size * world, "per_step": t.batch_size * world * t.grad_accum}}


def check_resume(old: dict | None, new: dict, checkpoint, force: bool, log) -> None:
    """Refuse (TrainingError) a resume whose changes matter, unless `force`; log every other difference.
    A checkpoint without a record (written before records existed) resumes with a note."""
    from ..errors import TrainingError

    if old is None:
        log(f"note: {checkpoint} holds no run record (an older tunewright wrote it); resuming without "
            f"checking that the settings are the same")
        return
    changes = changed_keys(old, new)
    why = refusal(changes, str(checkpoint))
    if why and not force:
        raise TrainingError(why)
    for c in changes:
        if c.matters:
            log(f"warning: --force: resuming although {c} ({c.why})")
        else:
            log(f"note: changed since the checkpoint, {c.why}: {c}")
