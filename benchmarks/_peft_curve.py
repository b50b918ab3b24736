"""The curve section of bench_peft.py, the time-to-accuracy race: tunewright's LoRA defaults against
the usual HF Trainer + peft LoRA recipe, both on full R8, test accuracy on the full test set at the
start and every half epoch. One AccuracyCurve serves both tools; each wraps it in its callback protocol.
"""
from __future__ import annotations

import tempfile
import time

from _measure import peak_rss_mb
from _peft_job import THREADS, device, hf_datasets, hf_lora_model, minilm_path, r8_config, r8_texts


class AccuracyCurve:
    """Test accuracy at step 0 and every `every` optimizer steps; its own evaluation time is subtracted
    from the clock. `logits(model, batch)` is the tool's forward pass over a collated test batch: (B, C).

    It is a tunewright callback as it stands (on_fit_start, on_step_end); the HF Trainer's callback
    calls start() and record().
    """

    def __init__(self, test_set, collate, every: int, logits, batch_size: int = 128):
        # Length-sorted order: the same numbers, less padding, a faster curve.
        self.order = sorted(range(len(test_set)), key=lambda i: len(test_set[i]["input_ids"]))
        self.test_set, self.collate, self.every, self.batch_size = test_set, collate, every, batch_size
        self.logits = logits
        self.t0, self.eval_seconds, self.points = None, 0.0, []

    def start(self, model) -> None:
        self.t0 = time.perf_counter()
        self.record(model, 0)                  # the starting point: a random head, or a warm-started one

    def due(self, step: int, last_step: int) -> bool:
        return step % self.every == 0 or step == last_step

    def shift(self, seconds: float) -> None:
        """Add time spent before the loop (the head warm start: summary's prepare_seconds) to every point."""
        for p in self.points:
            p["train_seconds"] = round(p["train_seconds"] + seconds, 1)

    def on_fit_start(self, ctx) -> None:
        self.start(ctx.model)

    def on_step_end(self, ctx) -> None:
        if self.due(ctx.state.step, ctx.state.total_steps):
            self.record(ctx.model, ctx.state.step)

    def record(self, model, step: int) -> None:
        import numpy as np
        import torch
        start = time.perf_counter()
        was = model.training
        model.eval()
        preds, labels = [], []
        with torch.no_grad():
            for s in range(0, len(self.order), self.batch_size):
                batch = self.collate([self.test_set[i] for i in self.order[s:s + self.batch_size]])
                labels.append(batch["labels"].numpy())
                preds.append(self.logits(model, batch).argmax(-1).cpu().numpy())
        model.train(was)
        acc = float((np.concatenate(preds) == np.concatenate(labels)).mean())
        end = time.perf_counter()
        wall = end - self.t0 - self.eval_seconds - (end - start)
        self.eval_seconds += end - start
        self.points.append({"step": step, "train_seconds": round(wall, 1), "test_accuracy": round(acc, 4)})
        print(f"curve: step {step} t={wall:.0f}s acc={acc:.4f}", flush=True)


def _tunewright_logits(model, batch):
    from tunewright.training.loop import to_device
    return model(to_device(batch, next(model.parameters()).device))


def _hf_logits(model, batch):
    # Without the labels: given them, the HF model would compute a loss too.
    return model(**{k: v.to(model.device) for k, v in batch.items() if k != "labels"}).logits


def job_tw_curve(full: bool, train_rows: int) -> dict:
    """tunewright's LoRA defaults on the full R8 train set, test accuracy every half epoch."""
    from transformers import AutoTokenizer
    from tunewright.config.load import config_from_dict
    from tunewright.data import build_data, read_data
    from tunewright.run import train
    with tempfile.TemporaryDirectory() as out:
        cfg = config_from_dict(r8_config("lora", out, "curve"))
        # The curve's own copy of the tokenized test set (the run builds its own; no second model).
        tok = AutoTokenizer.from_pretrained(minilm_path())
        bundle = build_data(read_data(cfg), tok, cfg)
        steps_per_epoch = -(-len(bundle.train) // cfg.train.batch_size)
        curve = AccuracyCurve(bundle.test, bundle.collate, max(1, steps_per_epoch // 2), _tunewright_logits)
        t0 = time.perf_counter()
        s = train(cfg, callbacks=[curve]).summary
        wall = time.perf_counter() - t0 - curve.eval_seconds
        curve.shift(s["prepare_seconds"])
    return {"tool": "tunewright", "recipe": "method: lora (defaults)", "points": curve.points,
            "final_test_accuracy": s["test"]["accuracy"], "final_test_macro_f1": s["test"]["macro_f1"],
            "train_seconds": round(s["prepare_seconds"] + s["train_seconds"] - curve.eval_seconds, 1),
            "prepare_seconds": s["prepare_seconds"], "wall_seconds": round(wall, 1),
            "epochs": s["epochs_run"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def job_trainer_curve(full: bool, train_rows: int, steps: int | None = None) -> dict:
    """The usual HF Trainer + peft LoRA recipe, with the same half-epoch test curve."""
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    torch.set_num_threads(THREADS)
    train_df, test_df = r8_texts()
    labels = sorted(set(train_df["label"]))
    tok = AutoTokenizer.from_pretrained(minilm_path())
    train_ds, test_ds = hf_datasets(tok, 128, train_df, test_df, labels)
    model = hf_lora_model(len(labels))
    collate = DataCollatorWithPadding(tok)
    steps_per_epoch = -(-len(train_ds) // 32)
    curve = AccuracyCurve(test_ds, collate, max(1, steps_per_epoch // 2), _hf_logits)

    class Curve(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            curve.start(model)

        def on_step_end(self, args, state, control, **kw):
            if curve.due(state.global_step, state.max_steps):
                curve.record(model, state.global_step)

    with tempfile.TemporaryDirectory() as out:
        import inspect
        warm = ({"warmup_ratio": 0.06} if "warmup_ratio" in inspect.signature(TrainingArguments).parameters
                else {"warmup_steps": 0.06})           # transformers 5.x: a float warmup_steps is a ratio
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=32, learning_rate=5e-4, **warm,
                                 num_train_epochs=2, lr_scheduler_type="linear",
                                 weight_decay=0.01, logging_steps=10, save_strategy="no", report_to="none",
                                 seed=42, use_cpu=device().type == "cpu", dataloader_num_workers=0, disable_tqdm=True,
                                 max_steps=steps or -1)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collate,
                          callbacks=[Curve()])
        t0 = time.perf_counter()
        out_train = trainer.train()
        wall = time.perf_counter() - t0 - curve.eval_seconds
    final = curve.points[-1]["test_accuracy"] if curve.points else None
    return {"tool": "hf_trainer+peft", "recipe": "LoRA r=8 q/v, lr 5e-4, bs 32, len 128, 2 epochs, 6% warmup, "
            "CLS pooler head", "points": curve.points, "final_test_accuracy": final,
            "train_seconds": round(out_train.metrics["train_runtime"] - curve.eval_seconds, 1),
            "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}
