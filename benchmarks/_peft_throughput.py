"""The throughput half of bench_peft.py's peer section: the same LoRA job through tunewright and
through HF Trainer + peft, samples/s over the timed steps and peak RSS up to the last of them.
"""
from __future__ import annotations

import tempfile

from _measure import StepMarks, peak_rss_mb
from _peft_job import THREADS, device, hf_datasets, hf_lora_model, minilm_path, r8_config, r8_texts


def throughput_rows(steps: int, warmup: int) -> int:
    """R8 rows for a throughput job: after the 10% validation hold-out, one epoch outlasts the steps."""
    rows = -(-(steps + warmup) * 32 * 10 // 9) + 32
    if rows > 5485:
        raise ValueError(f"--steps {steps}: at most 150 timed steps fit in one epoch of R8's 5,485 train rows")
    return rows


def tunewright_steps(steps: int, warmup: int, run_name: str = "tp", **over) -> StepMarks:
    """tunewright's side: `tunewright.run.train` on the job's config, `over` on top (bench_rss.py's variants)."""
    from tunewright.run import train
    marks = StepMarks()
    with tempfile.TemporaryDirectory() as out:
        train(r8_config("lora", out, run_name, **{"data.train_subset": throughput_rows(steps, warmup),
                                                  "data.test_subset": 64, "train.precision": "fp32",
                                                  "lora.target_modules": ["query", "value"], "lora.dropout": 0.1,
                                                  "data.max_length": 128, "model.attention_dropout": None,
                                                  "train.max_steps": steps + warmup, "train.warmup_ratio": 0.0,
                                                  "train.eval_every_steps": 10 ** 6, **over}), callbacks=[marks])
    return marks


def trainer_steps(steps: int, warmup: int) -> StepMarks:
    """The peer's side: HF Trainer + peft LoRA with the Trainer's defaults, on the same rows."""
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    from tunewright.data.splits import subset_indices
    torch.set_num_threads(THREADS)
    train_df, test_df = r8_texts()
    keep, _ = subset_indices(len(train_df), list(train_df["label"]), throughput_rows(steps, warmup), 42)
    labels = sorted(set(train_df["label"]))
    tok = AutoTokenizer.from_pretrained(minilm_path())
    train_ds, _ = hf_datasets(tok, 128, train_df.iloc[sorted(keep)], test_df.iloc[:1], labels)
    model = hf_lora_model(len(labels))
    marks = StepMarks()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.mark()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=32, learning_rate=5e-4,
                                 max_steps=steps + warmup, save_strategy="no", report_to="none", seed=42,
                                 use_cpu=device().type == "cpu", disable_tqdm=True, logging_steps=10 ** 6)
        Trainer(model=model, args=args, train_dataset=train_ds, data_collator=DataCollatorWithPadding(tok),
                callbacks=[Clock()]).train()
    return marks


def job_throughput(tool: str, steps: int = 20, warmup: int = 2, run_name: str = "tp", **over) -> dict:
    """The same LoRA job for `steps` timed optimizer steps; samples/s over the timed steps only.

    Both tools get the same rows. tunewright holds 10% of them out for validation, so there are enough
    rows for all steps to fall inside its first epoch: the timed window holds training steps only, not
    the checkpoint tunewright writes at an epoch's end (the Trainer job saves nothing). `run_name` and
    `over` (config overrides) are tunewright's only.
    """
    if tool == "tunewright":
        marks = tunewright_steps(steps, warmup, run_name, **over)
    elif over:
        raise ValueError(f"config overrides {sorted(over)} are for tunewright's run, not the Trainer's")
    else:
        marks = trainer_steps(steps, warmup)
    t = marks.times
    seconds = t[-1] - t[warmup - 1]
    # Peak RSS up to the last timed step, the same point for both tools: tunewright.train then evaluates
    # and saves, which the Trainer job (save_strategy=no, no eval) does not; that is peak_rss_exit_mb.
    return {"tool": tool, "timed_steps": steps, "samples_per_s": round(steps * 32 / seconds, 2),
            "seconds": round(seconds, 1), "peak_rss_mb": round(marks.peak_rss_mb, 1),
            "peak_rss_exit_mb": round(peak_rss_mb(), 1)}
