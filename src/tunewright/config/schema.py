"""The typed config schema.

Every key has a type, a default that runs, and help text (``field(metadata={"help": ...})``).
``tunewright config`` prints this schema; ``load.py`` turns YAML plus dotted overrides into it
and names the key, the value and what is allowed when something is wrong.

Other parts of tunewright add their own sections by adding a dataclass field here; a section's
options live next to the code that reads them only if that code has no other place to say them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

TASKS = ("classification", "multilabel", "regression", "causal_lm", "image_classification")
POOLINGS = ("auto", "cls", "mean", "max", "last")
OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("constant", "linear", "cosine", "polynomial", "one_cycle", "slanted_triangular")
IMBALANCE = ("none", "weight", "sample")
TRACKERS = ("jsonl", "tensorboard")  # issue 5 adds mlflow and wandb


def opt(default: Any, help: str, choices: tuple | None = None, **kw) -> Any:
    """A dataclass field with help text (and the allowed values, when they are a closed set)."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class ModelConfig:
    name: str = opt("minilm", "Packaged short name (see `tunewright assets`), a Hugging Face hub id, "
                    "a local model folder, or `package.module:function` returning an nn.Module "
                    "(that imports and runs your code).")
    pooling: str = opt("auto", "How token states become one vector for a text head. `auto` reads the "
                       "model's own configuration (sentence-transformers' 1_Pooling).", POOLINGS)
    revision: Optional[str] = opt(None, "Hub revision (only used when a network is reachable).")
    trust_remote_code: bool = opt(False, "Allow a hub model to run its own Python code. Off by default.")
    head_dropout: float = opt(0.1, "Dropout before the task head.")
    dropout: Optional[float] = opt(None, "Override the backbone's dropout probabilities (None keeps them).")
    factory_kwargs: dict = opt({}, "Keyword arguments passed to a `package.module:function` factory.")
    factory_outputs: str = opt("features", "What a factory module returns: `features` (tunewright adds "
                               "a linear head) or `logits` (used as is).", ("features", "logits"))


@dataclass
class DataConfig:
    train: Optional[str] = opt("reuters-r8", "Training data: a CSV/TSV/JSONL file, an image folder "
                               "(one subfolder per class) or a packaged dataset name.")
    val: Optional[str] = opt(None, "Validation data. None: a seeded stratified split of train.")
    test: Optional[str] = opt(None, "Test data. None: the packaged test split, or a stratified split of train.")
    text_column: str = opt("text", "Column holding the input text.")
    label_column: str = opt("label", "Column holding the label (multilabel: a list or `a|b` string).")
    prompt_column: str = opt("prompt", "Instruction tuning: column with the prompt.")
    response_column: str = opt("response", "Instruction tuning: column with the response (the only tokens in the loss).")
    max_length: int = opt(128, "Maximum tokens per text example (longer ones are truncated).")
    max_bad_rows: int = opt(0, "Skip and count up to this many malformed rows; one more is an error.")
    val_fraction: float = opt(0.1, "Share of train held out for validation when `val` is not given.")
    test_fraction: float = opt(0.2, "Share of train held out for test when no test split exists.")
    train_subset: Optional[int] = opt(None, "Keep a seeded stratified subset of this many training rows.")
    test_subset: Optional[int] = opt(None, "Keep a seeded stratified subset of this many test rows.")
    image_size: int = opt(224, "Side of the square image fed to vision models.")
    bucket: bool = opt(True, "Group training examples of similar length into batches (less padding).")
    imbalance: str = opt("none", "Class imbalance: class-weighted loss, a weighted sampler, or nothing.", IMBALANCE)


@dataclass
class TrainConfig:
    epochs: int = opt(3, "Passes over the training data.")
    max_steps: Optional[int] = opt(None, "Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = opt(32, "Examples per forward pass.")
    eval_batch_size: Optional[int] = opt(None, "Batch size for evaluation (default: 2 x batch_size).")
    lr: float = opt(5e-5, "Peak learning rate (the head's, when rates differ per group).")
    weight_decay: float = opt(0.01, "Decoupled weight decay; never applied to biases and norm weights.")
    grad_accum: int = opt(1, "Micro-batches accumulated per optimizer step.")
    seed: int = opt(42, "Seed for data order, splits, initialisation and dropout.")
    optimizer: str = opt("adamw", "Optimizer.", OPTIMIZERS)
    momentum: float = opt(0.9, "SGD momentum.")
    max_grad_norm: Optional[float] = opt(1.0, "Clip the global gradient norm to this (None: no clipping).")
    schedule: str = opt("linear", "Learning-rate schedule after warmup.", SCHEDULES)
    warmup_ratio: float = opt(0.06, "Share of steps spent in linear warmup.")
    label_smoothing: float = opt(0.0, "Label smoothing for single-label classification.")
    precision: str = opt("auto", "auto: fp32 on CPUs without fast bf16, bf16/fp16 autocast on GPUs that have it.", PRECISIONS)
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps.")
    eval_every_steps: Optional[int] = opt(None, "Evaluate every N optimizer steps (None: every epoch).")
    log_every_steps: int = opt(10, "Write a training row to metrics.jsonl every N optimizer steps.")
    metric: str = opt("auto", "Metric that picks the best checkpoint and drives early stopping "
                      "(auto: accuracy, mse or loss by task).")
    early_stopping_patience: Optional[int] = opt(None, "Stop after this many evaluations without improvement.")
    max_nonfinite_steps: int = opt(5, "Stop with an error after this many non-finite steps in a row.")
    num_threads: Optional[int] = opt(None, "torch CPU threads (None: torch's default).")
    progress: str = opt("auto", "auto: a rich bar on a TTY, plain lines otherwise.", ("auto", "rich", "plain", "none"))


@dataclass
class CheckpointConfig:
    every_steps: Optional[int] = opt(None, "Write a resumable checkpoint every N optimizer steps "
                                     "(None: at the end of every epoch).")
    keep_last: int = opt(2, "Keep this many newest checkpoints (at least one valid one always stays).")


@dataclass
class Config:
    run_name: str = opt("run", "Name of the run; output goes to <output_dir>/<run_name>/.")
    output_dir: str = opt("runs", "Folder that holds run folders.")
    task: str = opt("classification", "What the head predicts.", TASKS)
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The pretrained model."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Where the data comes from."})
    strategy: str = opt("full", "Which existing parameters train (see docs/strategies.md).")
    method: str = opt("none", "Parameter-efficient method that adds parameters (see docs/peft.md).")
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "Optimisation and evaluation."})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"help": "Resumable checkpoints."})
    tracking: list = opt([], "Extra trackers besides metrics.jsonl (always written).", TRACKERS)
