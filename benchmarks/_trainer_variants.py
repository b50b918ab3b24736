"""The four variants of bench_trainer.py, each run in the calling process: tunewright_fixed and
tunewright (through tunewright), hand_fixed (a hand-written loop), hf_trainer (transformers.Trainer).
Each returns its StepClock's measurements plus what proves it ran the same job.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _measure import StepClock, peak_rss_mb
from _trainer_job import (MEASUREMENT_OF, VARIANTS, BenchConfig, label_names, model_dir, rows_digest, subset,
                          trainable_params)


class PadTo:
    """Wraps a tunewright Collator: pad input_ids / attention_mask on the right to `length` (B, length)."""

    def __init__(self, collate, length: int):
        self.collate, self.length = collate, length

    def __call__(self, examples):
        import torch.nn.functional as F
        batch = self.collate(examples)
        extra = self.length - batch["input_ids"].shape[1]
        if extra > 0:
            batch["input_ids"] = F.pad(batch["input_ids"], (0, extra), value=getattr(self.collate, "pad_id", 0))
            batch["attention_mask"] = F.pad(batch["attention_mask"], (0, extra), value=0)
        return batch


def tunewright_config(cfg: BenchConfig, fixed: bool) -> dict:
    """The benchmark job as a tunewright config dict."""
    from tunewright.assets import get_dataset
    out = tempfile.mkdtemp(prefix="bench-tw-")
    # data.val_fraction must be > 0, which would take rows out of the benchmark subset; so `data.val`
    # is a small file of test rows instead. It is only evaluated after the timed steps.
    val_csv = Path(out) / "val.csv"
    get_dataset(cfg.dataset).load()["test"][["text", "label"]].head(16).to_csv(val_csv, index=False)
    return {
        "run_name": "bench", "output_dir": out, "task": "classification",
        "model": {"name": cfg.model},
        "data": {"train": cfg.dataset, "train_subset": cfg.rows, "val": str(val_csv), "test_subset": 16,
                 "max_length": cfg.max_length, "bucket": not fixed},
        "train": {"max_steps": cfg.warmup + cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
                  "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm, "schedule": "linear",
                  "warmup_ratio": 0.0, "seed": cfg.seed, "precision": "fp32", "device": "cpu",
                  "num_threads": cfg.threads, "progress": "none", "log_every_steps": 10_000},
    }


class ClockCallback:
    """A tunewright callback (a plain object with on_* methods) that drives a StepClock."""

    def __init__(self, clock: StepClock):
        self.clock, self.model = clock, None

    def on_fit_start(self, ctx) -> None:
        self.model = ctx.model
        self.clock.watch(ctx.model.backbone.get_input_embeddings())
        self.clock.mark_start()

    def on_step_end(self, ctx) -> None:
        self.clock.step_end()


def run_tunewright(cfg: BenchConfig, fixed: bool) -> dict:
    """B: the public API, `tunewright.train(config, callbacks=[clock])`, with tunewright's defaults.
    A: the same config through `run.assemble` (data, model, optimizer, scheduler exactly as train()
    builds them) and `fit()`, with the collate wrapped to pad every batch to max_length."""
    import torch
    import tunewright
    from tunewright.config.load import config_from_dict
    from tunewright.data import read_data

    tw = tunewright_config(cfg, fixed)
    clock = StepClock()
    cb = ClockCallback(clock)
    if fixed:
        from tunewright.run import assemble
        from tunewright.training.loop import fit
        from tunewright.training.losses import loss_for
        from tunewright.training.precision import resolve_precision
        conf = config_from_dict(tw)
        asm = assemble(conf)
        fit(asm.model, asm.bundle.train, PadTo(asm.bundle.collate, cfg.max_length), asm.optimizer, asm.scheduler,
            conf, loss_fn=loss_for("classification"), precision=resolve_precision("fp32", asm.device),
            callbacks=[cb])
    else:
        tunewright.train(tw, callbacks=[cb])  # evaluation and saving come after the timed steps
    raw = read_data(config_from_dict(tw))      # the rows train() read (it is deterministic), for the digest
    return {**clock.result(cfg.warmup, cfg.steps), "trainable_params": trainable_params(cb.model),
            "rows": len(raw.train), "rows_digest": rows_digest(ex.text for ex in raw.train),
            "entry_point": "run.assemble + fit(), PadTo collate" if fixed else "tunewright.train(config, callbacks=[clock])",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def mean_pool_classifier(path: str, num_labels: int, dropout: float = 0.1):
    """AutoModel without its pooler, masked mean pooling, dropout, linear head: the architecture and
    parameters of tunewright's TaskModel for MiniLM, written out by hand."""
    import torch
    from torch import nn
    from transformers import AutoModel

    class MeanPoolClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, dtype=torch.float32)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(self.encoder.config.hidden_size, num_labels)

        def forward(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
            m = attention_mask.unsqueeze(-1).to(h.dtype)                                         # (B, T, 1)
            return self.head(self.drop((h * m).sum(1) / m.sum(1).clamp(min=1)))                 # (B, C)
    return MeanPoolClassifier()


def run_hand(cfg: BenchConfig) -> dict:
    """The minimal loop: for batch in DataLoader: forward, loss, backward, clip, step."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    torch.manual_seed(cfg.seed)
    path = model_dir(cfg)
    texts, labels = subset(cfg)
    names = label_names(cfg)
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(texts, truncation=True, max_length=cfg.max_length, padding="max_length", return_tensors="pt")
    y = torch.tensor([names.index(label) for label in labels])
    data = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": y[i]}
            for i in range(len(y))]
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    model = mean_pool_classifier(path, len(names))
    decay = [p for p in model.parameters() if p.ndim > 1]          # no decay on biases / LayerNorm
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    total = cfg.warmup + cfg.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, (total - step) / total))
    clock = StepClock()
    clock.watch(model.encoder.get_input_embeddings())
    clock.mark_start()
    model.train()
    for batch in loader:
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step_end()
    return {**clock.result(cfg.warmup, cfg.steps), "trainable_params": trainable_params(model),
            "rows": len(data), "rows_digest": rows_digest(texts),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def run_hf_trainer(cfg: BenchConfig) -> dict:
    """`transformers.Trainer` with its defaults, except what makes it the same job (see module doc)."""
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainerCallback,
                              TrainingArguments)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = model_dir(cfg)
    texts, labels = subset(cfg)
    names = label_names(cfg)
    tok = AutoTokenizer.from_pretrained(path)
    # A list of feature dicts is a valid train_dataset (`datasets` is not a tunewright dependency);
    # the default collator, DataCollatorWithPadding, pads each batch to its longest row.
    enc = tok(texts, truncation=True, max_length=cfg.max_length)
    ds = [{**{k: v[i] for k, v in enc.items()}, "label": names.index(label)} for i, label in enumerate(labels)]
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-hf-"), per_device_train_batch_size=cfg.batch_size,
        max_steps=cfg.warmup + cfg.steps, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, use_cpu=True, report_to="none",
        save_strategy="no", eval_strategy="no", disable_tqdm=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names), dtype=torch.float32)
    clock = StepClock()
    clock.watch(model.get_input_embeddings())

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock.mark_start()

        def on_step_end(self, args, state, control, **kw):
            clock.step_end()

    trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[Clock()])
    torch.set_num_threads(cfg.threads)   # after Trainer/accelerate setup, which may touch threads
    trainer.train()
    return {**clock.result(cfg.warmup, cfg.steps), "trainable_params": trainable_params(model),
            "rows": len(ds), "rows_digest": rows_digest(texts), "optim": str(args.optim.value),
            "collator": type(trainer.data_collator).__name__,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def run_variant(variant: str, cfg: BenchConfig) -> dict:
    """Run one variant in this process and return its measurements."""
    import torch
    from tunewright.huge_pages import active as huge_pages_active
    if cfg.warmup < 1 or cfg.steps < 1:
        raise ValueError("warmup and steps must both be >= 1 (the timed window starts at the end of warmup)")
    torch.set_num_threads(cfg.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if variant == "tunewright_fixed":
        res = run_tunewright(cfg, fixed=True)
    elif variant == "tunewright":
        res = run_tunewright(cfg, fixed=False)
    elif variant == "hand_fixed":
        res = run_hand(cfg)
    elif variant == "hf_trainer":
        res = run_hf_trainer(cfg)
    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return {"variant": variant, "measurement": MEASUREMENT_OF[variant], **res,
            "peak_rss_exit_mb": round(peak_rss_mb(), 1), "wall_s": round(time.perf_counter() - t0, 1),
            "huge_pages": huge_pages_active(),
            "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}
