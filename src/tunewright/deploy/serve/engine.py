"""What the server runs: many runs behind one `predict(rows)` call, one base model per backbone.

TorchEngine: runs whose adapters sit on the same backbone (same saved `source`) share ONE base model; each
further run is `load_adapter(..., activate=False)` beside the others, with its own head. A request names its
adapter; switching costs nothing, because nothing is reloaded. A batch mixing adapters is served in one
forward pass where peft allows it (LoRA, not DoRA: peft's `adapter_names=` routes each row through its own
LoRA matrices, the CPU-side counterpart of LoRAX / vLLM multi-LoRA); each row then goes through its own run's
head. Other methods (IA3, prompt tuning, tunewright's own layers) are grouped by adapter inside the batch and
run one group after the other with `set_adapter`. Runs without an adapter, or whose head does not fit the
shared one's shape, get a base model of their own.

OnnxEngine: one exported graph per run (adapters are merged into ONNX weights, so graphs cannot share a base);
rows are grouped by run inside the batch.

Every call runs on the server's single model thread (serve/app.py), so `set_adapter` never races a forward.
Adapter names are keys of a dict built here; a request's name is never used as a path.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelLoadError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Served:
    """One servable run: its public name, and where its weights live."""

    name: str
    run_dir: str
    task: str
    modality: str
    label_names: list | None
    method: str
    base: Any = None                 # TorchEngine: the _Base; OnnxEngine: the OnnxClassifier
    adapter: str | None = None       # the adapter's name inside the shared model (ours, never the request's)
    cfg: Any = None

    def public(self) -> dict:
        return {"name": self.name, "run_dir": self.run_dir, "task": self.task, "modality": self.modality,
                "labels": self.label_names, "method": self.method}


@dataclass
class _Base:
    model: Any
    preprocessor: Any
    collate: Any
    key: str
    mixed: bool = False              # peft LoRA everywhere: one forward for a mixed batch
    runs: list = field(default_factory=list)


def public_names(run_dirs: list[str], names: list[str] | None) -> list[str]:
    """The adapter names requests use: --name values, else each run folder's name (made unique)."""
    if names and len(names) != len(run_dirs):
        raise ModelLoadError(f"--name was given {len(names)} times for {len(run_dirs)} runs; give one per run")
    out: list[str] = []
    for i, d in enumerate(run_dirs):
        n = names[i] if names else (Path(d).resolve().name or f"run{i}")
        if n in out:
            n = f"{n}-{i}"
        if not NAME.match(n):
            raise ModelLoadError(f"adapter name {n!r} (for {d}): use letters, digits, '_', '-', '.' (max 64)")
        out.append(n)
    return out


def to_rows(task: str, labels: list | None, logits: np.ndarray) -> list[dict]:
    """Logits (N, C) -> one reply per row: label + probabilities, labels (multilabel), or a value."""
    if task == "regression":
        return [{"value": float(v)} for v in np.asarray(logits).reshape(-1)]
    if task == "multilabel":
        p = 1 / (1 + np.exp(-logits))
        return [{"labels": [labels[j] for j in np.flatnonzero(r > 0.5)],
                 "probs": {labels[j]: round(float(v), 6) for j, v in enumerate(r)}} for r in p]
    z = np.exp(logits - logits.max(-1, keepdims=True))
    p = z / z.sum(-1, keepdims=True)
    return [{"label": labels[int(r.argmax())], "score": round(float(r.max()), 6),
             "probs": {labels[j]: round(float(v), 6) for j, v in enumerate(r)}} for r in p]


def length_chunks(lengths: list[int], slack: float = 1.25, pad_free: int = 256) -> list[list[int]]:
    """Positions of `lengths` sorted by length and cut into chunks, each padded to its own longest row.

    On a CPU a forward pass costs about its padded tokens (rows x longest row); padding a 20-token text to 128
    costs as much as six of them. A chunk therefore grows while its padded tokens stay within `slack` x its real
    tokens, or within `pad_free` padded tokens in all (small chunks: the fixed cost of a call matters more).
    Images (all lengths 0) make one chunk.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:                        # ascending: each new row is the chunk's longest
        padded = (len(cur) + 1) * lengths[i]
        if cur and padded > slack * (real + lengths[i]) and padded > pad_free:
            chunks.append(cur)
            cur, real = [], 0
        cur.append(i)
        real += lengths[i]
    return chunks + [cur] if cur else chunks


class TorchEngine:
    backend = "torch"

    def __init__(self, run_dirs: list[str], names: list[str] | None = None, threads: int | None = None):
        import torch

        from ...config import load_config
        from ...models.save import read_meta

        if threads:
            torch.set_num_threads(int(threads))
        self.runs: dict[str, Served] = {}
        self.bases: list[_Base] = []
        for name, d in zip(public_names(run_dirs, names), run_dirs):
            meta = read_meta(Path(d) / "model")
            cfg = load_config(Path(d) / "config.yaml")
            run = Served(name, str(d), meta["task"], meta["modality"], meta.get("label_names"), cfg.method, cfg=cfg)
            self._attach(run, meta)
            self.runs[name] = run
        for base in self.bases:
            base.mixed = self._mixed_ok(base)

    def _attach(self, run: Served, meta: dict) -> None:
        """Put `run` on a base already loaded for its backbone, or load one."""
        from ...peft import active_adapter, load_adapter
        from ...peft.base import heads
        key = json.dumps(meta["source"], sort_keys=True, default=str)
        if meta.get("weights") == "adapter":
            for base in self.bases:
                if base.key == key and base.runs[0].task == run.task:
                    internal = f"served{len(base.runs)}"
                    try:
                        load_adapter(base.model, run.run_dir, internal, activate=False)
                    except ModelLoadError:          # e.g. a head of another width: load it on its own
                        break
                    heads(base.model)[internal].eval()
                    run.base, run.adapter = base, internal
                    base.runs.append(run)
                    return
        from ...data import Collator, pad_id_of
        from ...run import load_run
        cfg, model, pre, meta = load_run(run.run_dir)
        pad = pad_id_of(pre) if model.modality == "text" else 0
        base = _Base(model.eval(), pre, Collator(model.task, pad, model.num_labels), key if cfg.method != "none"
                     else f"own:{run.run_dir}")
        run.base, run.adapter = base, (active_adapter(model) if cfg.method != "none" else None)
        base.runs.append(run)
        self.bases.append(base)

    @staticmethod
    def _mixed_ok(base: _Base) -> bool:
        from ...peft.base import is_peft
        m = base.model
        if not is_peft(m) or m.task == "causal_lm" or m.modality != "text":
            return False
        cfgs = m.backbone.peft_config.values()
        return all(c.peft_type.value == "LORA" and not getattr(c, "use_dora", False) for c in cfgs)

    def metadata(self) -> dict:
        return {"backend": self.backend, "adapters": [r.public() for r in self.runs.values()],
                "bases": [{"model": b.model.name, "adapters": [r.name for r in b.runs],
                           "mixed_adapter_batches": b.mixed} for b in self.bases]}

    # -- predict ---------------------------------------------------------------------------------------------
    def encode(self, rows: list[tuple[str, Any]]) -> list[dict]:
        """One tokenizer call per run in `rows` (not one per row), examples back in row order."""
        from ...data import encode_inputs
        examples: list = [None] * len(rows)
        for name in dict.fromkeys(n for n, _ in rows):
            idx = [i for i, (n, _) in enumerate(rows) if n == name]
            run = self.runs[name]
            for i, e in zip(idx, encode_inputs(run.base.preprocessor, [rows[i][1] for i in idx], run.cfg)):
                examples[i] = e
        return examples

    def predict(self, rows: list[tuple[str, Any]]) -> list[dict]:
        """rows: (adapter name, input) pairs, any mix of adapters -> one reply dict per row, in order."""
        out: list[dict | None] = [None] * len(rows)
        by_base: dict[int, list[int]] = {}
        for i, (name, _) in enumerate(rows):
            by_base.setdefault(id(self.runs[name].base), []).append(i)
        for idx in by_base.values():
            base = self.runs[rows[idx[0]][0]].base
            for i, reply in zip(idx, self._predict_base(base, [rows[i] for i in idx])):
                out[i] = reply
        return out

    def _predict_base(self, base: _Base, rows: list) -> list[dict]:
        import torch

        from ...models.pooling import pool
        from ...peft import set_adapter
        from ...peft.base import heads

        m = base.model
        examples = self.encode(rows)
        names = [self.runs[name].adapter for name, _ in rows]
        # Mixed LoRA batches go through one forward per length chunk; other methods one adapter at a time.
        mixed = base.mixed and len(set(names)) > 1
        groups = [list(range(len(rows)))] if mixed else \
            [[i for i, n in enumerate(names) if n == a] for a in dict.fromkeys(names)]
        logits: list = [None] * len(rows)
        with torch.inference_mode():
            for group in groups:
                if not mixed and names[group[0]] is not None:
                    set_adapter(m, names[group[0]])
                lengths = [len(examples[i].get("input_ids", ())) for i in group]
                for chunk in length_chunks(lengths):
                    idx = [group[k] for k in chunk]
                    batch = base.collate([examples[i] for i in idx])
                    if mixed:
                        hidden = m.backbone(**m._text_inputs(batch), adapter_names=[names[i] for i in idx])
                        feats = pool(m._own_positions(hidden.last_hidden_state, batch), batch["attention_mask"],
                                     m.pooling)                                              # (B, H)
                        for a in dict.fromkeys(names[i] for i in idx):
                            sel = [k for k, i in enumerate(idx) if names[i] == a]
                            for k, lg in zip(sel, heads(m)[a](feats[sel])):
                                logits[idx[k]] = lg
                    else:
                        for i, lg in zip(idx, m(batch)):
                            logits[i] = lg
        replies = []
        for (name, _), lg in zip(rows, logits):
            run = self.runs[name]
            replies += to_rows(run.task, run.label_names, lg.float().numpy()[None])
        return replies

    # -- generate --------------------------------------------------------------------------------------------
    def generate(self, name: str, prompt: str, max_new_tokens: int, temperature: float, top_p: float,
                 seed: int, raw: bool) -> str:
        import torch

        from ...data import encode_inputs
        from ...peft import set_adapter

        run = self.runs[name]
        m, tok = run.base.model, run.base.preprocessor
        if run.adapter is not None:
            set_adapter(m, run.adapter)
        ids = torch.tensor([encode_inputs(tok, [prompt], run.cfg, as_prompt=not raw)[0]["input_ids"]])  # (1, T)
        torch.manual_seed(seed)
        kw = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        with torch.inference_mode():
            out = m.backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                      pad_token_id=tok.pad_token_id, **kw)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


class OnnxEngine:
    """`tunewright export` folders, one per run; RUN_DIR or RUN_DIR/export/onnx or the export folder itself."""

    backend = "onnx"

    def __init__(self, run_dirs: list[str], names: list[str] | None = None, threads: int | None = None,
                 variant: str = "fp32"):
        from ..onnx_runtime import OnnxClassifier
        self.runs: dict[str, Served] = {}
        for name, d in zip(public_names(run_dirs, names), run_dirs):
            folder = next((p for p in (Path(d), Path(d) / "export" / "onnx") if (p / "deploy.json").is_file()), None)
            if folder is None:
                raise ModelLoadError(f"{d}: no exported ONNX model (no deploy.json in it or in export/onnx/); run "
                                     f"`tunewright export {d}` first")
            clf = OnnxClassifier(folder, variant, threads)
            meta = clf.meta
            self.runs[name] = Served(name, str(d), meta["task"], meta["modality"], meta.get("label_names"),
                                     meta.get("method", "none"), base=clf)
        self.variant = variant

    def metadata(self) -> dict:
        return {"backend": f"onnx ({self.variant})", "adapters": [r.public() for r in self.runs.values()],
                "bases": [{"model": str(r.base.path), "adapters": [r.name], "mixed_adapter_batches": False}
                          for r in self.runs.values()]}

    def predict(self, rows: list[tuple[str, Any]]) -> list[dict]:
        out: list[dict | None] = [None] * len(rows)
        for name in dict.fromkeys(n for n, _ in rows):
            idx = [i for i, (n, _) in enumerate(rows) if n == name]
            run = self.runs[name]
            for i, reply in zip(idx, to_rows(run.task, run.label_names, run.base.logits([rows[i][1] for i in idx]))):
                out[i] = reply
        return out

    def generate(self, *args, **kwargs) -> str:
        raise NotImplementedError("the ONNX backend serves classifiers; serve causal LMs with --backend torch")
