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

from .federated import FederatedOptions

TASKS = ("classification", "multilabel", "regression", "causal_lm", "image_classification")
POOLINGS = ("auto", "cls", "mean", "max", "last")
OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("constant", "linear", "cosine", "polynomial", "one_cycle", "slanted_triangular")
IMBALANCE = ("none", "weight", "sample")
LAYER_LR = ("none", "ulmfit", "decay")
TRACKERS = ("jsonl", "tensorboard", "mlflow", "wandb")  # neptune: its client downgrades python-dateutil 4 -> 2.9


def opt(default: Any, help: str, choices: tuple | None = None, declared: str | None = None, **kw) -> Any:
    """A dataclass field with help text (and the allowed values, when they are a closed set; or, with
    ``declared``, the name of the registry that higher layers declare them in: see declared.py)."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if declared is not None:
        meta["declared"] = declared
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
    attention_dropout: Any = opt("auto", "Dropout on a Hugging Face backbone's attention probabilities, after "
                                 "`dropout`. `auto`: 0 while a PEFT `method` trains (the backbone is frozen; without "
                                 "it PyTorch runs its fused attention kernel instead of materialising B x heads x T x "
                                 "T probabilities: MiniLM LoRA at 256 tokens trains 1.6x faster on CPU with 1.5 GB "
                                 "less memory), the model's own value otherwise. A number sets it; null keeps it.")
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
    max_length: int = opt(256, "Maximum tokens per text example (longer ones are truncated). Batches pad only to "
                          "their longest row, so a longer limit costs time only on the texts that are long.")
    max_bad_rows: int = opt(0, "Skip and count up to this many malformed rows; one more is an error.")
    val_fraction: float = opt(0.1, "Share of train held out for validation when `val` is not given.")
    test_fraction: float = opt(0.2, "Share of train held out for test when no test split exists.")
    train_subset: Optional[int] = opt(None, "Keep a seeded stratified subset of this many training rows.")
    test_subset: Optional[int] = opt(None, "Keep a seeded stratified subset of this many test rows.")
    image_size: int = opt(224, "Side of the square image fed to vision models.")
    bucket: bool = opt(True, "Group training examples of similar length into batches (less padding).")
    pad_to_multiple_of: int = opt(1, "Round each text batch's padded length up to a multiple of this (1: the "
                                  "longest row). Fewer distinct batch shapes; see benchmarks/bench_rss.py.")
    imbalance: str = opt("none", "Class imbalance: class-weighted loss, a weighted sampler, or nothing.", IMBALANCE)
    # Augmentation (data/augment.py): train split only; any of it turns the feature cache off.
    random_resized_crop: bool = opt(False, "Images: crop a random area (crop_min_scale..1 of the image, aspect "
                                    "3/4..4/3) and resize it back (Szegedy et al. 2015).")
    crop_min_scale: float = opt(0.35, "Images: smallest area share random_resized_crop keeps (Inception used 0.08, "
                                "too harsh for 28x28 digits).")
    hflip: bool = opt(False, "Images: flip left-right with probability 0.5 (wrong for digits and text in images).")
    color_jitter: float = opt(0.0, "Images: scale brightness, contrast and saturation by random factors in "
                              "[1 - s, 1 + s]; 0: off.")
    mixup_alpha: float = opt(0.0, "Images: MixUp (Zhang et al. 2018), x = lam*x_i + (1-lam)*x_j with lam ~ "
                             "Beta(alpha, alpha) and the labels mixed alike; 0: off.")
    cutmix_alpha: float = opt(0.0, "Images: CutMix (Yun et al. 2019), a box of area share 1-lam pasted from "
                              "another image; 0: off. With mixup_alpha too, each batch uses one of them at random.")
    word_dropout: float = opt(0.0, "Text: drop each token (never a special token) with this probability; 0: off.")
    token_mask: float = opt(0.0, "Text: replace each token (never a special token) with the mask token, or the "
                            "unknown token where there is none, with this probability; 0: off.")


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
    cut_frac: float = opt(0.1, "slanted_triangular: share of steps spent rising (Howard & Ruder 2018).")
    stlr_ratio: float = opt(32.0, "slanted_triangular: how much smaller the lowest LR is than the peak.")
    pct_start: float = opt(0.3, "one_cycle: share of steps spent rising (torch OneCycleLR's pct_start).")
    div_factor: float = opt(25.0, "one_cycle: the LR starts at peak / div_factor.")
    final_div_factor: float = opt(1e4, "one_cycle: the LR ends at peak / (div_factor * final_div_factor).")
    power: float = opt(1.0, "polynomial: exponent of the decay (1: linear).")
    min_lr_ratio: float = opt(0.0, "cosine and polynomial: the LR decays to peak * min_lr_ratio.")
    label_smoothing: float = opt(0.0, "Label smoothing for single-label classification.")
    l2sp_alpha: float = opt(0.0, "L2-SP (Li et al. 2018): add alpha/2 * ||w - w0||^2 over the pretrained weights "
                            "that train, pulling them toward their starting point w0; 0: off.")
    l2sp_beta: float = opt(0.0, "L2-SP: add beta/2 * ||w||^2 over the new head's weights.")
    precision: str = opt("auto", "auto: fp32 on CPUs without fast bf16, bf16/fp16 autocast on GPUs that have it.", PRECISIONS)
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps.")
    cudnn_attention: bool = opt(False, "CUDA: let attention run on cuDNN. Off: cuDNN builds a graph for every new "
                                "sequence length (~0.1-0.4 s each), and padded batches bring new lengths nearly "
                                "every step; flash / memory-efficient attention need no build. Turn on for "
                                "fixed-length batches.")
    eval_every_steps: Optional[int] = opt(None, "Evaluate every N optimizer steps (None: every epoch).")
    log_every_steps: int = opt(10, "Write a training row to metrics.jsonl every N optimizer steps.")
    metric: str = opt("auto", "Metric that picks the best checkpoint and drives early stopping "
                      "(auto: accuracy, mse or loss by task).")
    early_stopping_patience: Optional[int] = opt(None, "Stop after this many evaluations without improvement.")
    max_nonfinite_steps: int = opt(5, "Stop with an error after this many non-finite steps in a row.")
    spike_factor: Optional[float] = opt(None, "Loss-spike rollback (training/spike.py): a step loss over this many "
                                        "times the median of the last spike_window step losses rolls the run back "
                                        "to the newest valid checkpoint saved before that step, at a lower LR, and "
                                        "is logged (event: rollback). None: off. checkpoint.every_steps sets how far "
                                        "back that is; keep_last >= 2 leaves one to go back to right after a save.")
    spike_window: int = opt(20, "Loss-spike rollback: step losses in the running median; no spike is detected "
                            "before it holds this many.")
    spike_lr_factor: float = opt(0.5, "Loss-spike rollback: each rollback multiplies every param group's LR, and "
                                 "the schedule's base LRs, by this (0 < factor < 1).")
    max_rollbacks: int = opt(3, "Loss-spike rollback: rollbacks at most; the next spike rolls back once more, "
                             "without lowering the LR, and stops the run (a spike that keeps coming back at ever "
                             "lower LRs points at the data: the replay trains on the same batches).")
    num_threads: Optional[int] = opt(None, "torch CPU threads (None: torch's default).")
    malloc_trim_every: Optional[int] = opt(None, "Hand the C heap's free pages back to the OS after every N "
                                           "optimizer steps (glibc malloc_trim; 0: never; None: every step on a "
                                           "CPU, never on a GPU). Batches of changing shapes fragment the heap, so a "
                                           "process keeps more than any step needs: trimming every step took the "
                                           "MiniLM LoRA peer job's peak RSS from 1.09-1.24x the HF Trainer's to "
                                           "0.93-0.95x, at 3-27% fewer samples/s (benchmarks/bench_rss.py).")
    progress: str = opt("auto", "auto: a rich bar on a TTY, plain lines otherwise.", ("auto", "rich", "plain", "none"))


def eval_batch_size(train: TrainConfig) -> int:
    """The evaluation batch size: `train.eval_batch_size`, else twice `train.batch_size` (no gradients
    are kept, so twice the rows fit). The one place this default lives."""
    return train.eval_batch_size or 2 * train.batch_size


@dataclass
class CheckpointConfig:
    every_steps: Optional[int] = opt(None, "Write a resumable checkpoint every N optimizer steps "
                                     "(None: at the end of every epoch).")
    keep_last: int = opt(2, "Keep this many newest checkpoints (at least one valid one always stays).")


@dataclass
class DistributedConfig:
    """Several processes under torchrun (`tunewright train CONFIG --nproc-per-node N`, docs/scale.md)."""
    backend: str = opt("auto", "torch.distributed backend: auto (nccl on CUDA, gloo otherwise), gloo or nccl.",
                       ("auto", "gloo", "nccl"))
    strategy: str = opt("ddp", "ddp: every rank holds the whole model, gradients are averaged "
                        "(DistributedDataParallel). fsdp: FSDP2 (fully_shard), each rank holds 1/N of every parameter, "
                        "gradient and optimizer state; for models that do not fit one device (docs/scale.md, 'FSDP').",
                        ("ddp", "fsdp"))
    timeout_minutes: float = opt(30.0, "How long a rank waits at a collective (a barrier while rank 0 writes, "
                                 "a gradient all-reduce) before it gives up with an error.")


@dataclass
class StrategyOptions:
    """Options of `strategy:` (docs/strategies.md). A strategy reads the keys that concern it; the
    ones marked "any strategy" combine with every strategy and every PEFT method."""
    train_top: Optional[int] = opt(None, "partial: train the top k layer groups and the head; freeze the rest.")
    rules: list = opt([], "partial: [[regex, train | freeze | LR multiple], ...]; the first rule whose regex "
                      "matches a parameter name decides it, and every parameter must match one. Any strategy: "
                      "a number multiplies that parameter's LR.")
    groups: list = opt([], "Override the discovered layer groups (embeddings, blocks, head): [[regex, group], ...], "
                       "first match wins, group names may use \\1; every parameter must match. Listed bottom to top.")
    layer_lr: str = opt("none", "Any strategy: discriminative LRs. ulmfit: each group down trains at the LR above "
                        "/ ulmfit_factor; decay: at layer_decay^depth x lr (LLRD, BEiT/timm); none: one LR.", LAYER_LR)
    ulmfit_factor: float = opt(2.6, "layer_lr ulmfit: divide the LR by this for each group further down.")
    layer_decay: float = opt(0.75, "layer_lr decay: a group d groups below the head trains at lr * layer_decay^d.")
    unfreeze_every: int = opt(1, "gradual_unfreezing: epochs between unfreezing one more group, top down.")
    unfreeze_at: list = opt([], "gradual_unfreezing: explicit epochs (0-based) at which the 2nd, 3rd, ... group "
                            "from the top unfreezes, e.g. [1, 2, 4]; overrides unfreeze_every.")
    unfreeze_on_plateau: bool = opt(False, "gradual_unfreezing: unfreeze the next group when the monitored "
                                    "validation metric has not improved for plateau_patience evaluations.")
    plateau_patience: int = opt(1, "gradual_unfreezing on plateau: evaluations without improvement before "
                                "the next group unfreezes.")
    cache_features: bool = opt(True, "Compute a frozen prefix's outputs once and train on them (feature_extraction, "
                               "partial). Turned off, with a note, where it would be wrong: augmentation, frozen "
                               "layers in train mode, or freezing that changes during the run.")
    frozen_train_mode: bool = opt(False, "Keep frozen layers in train mode (dropout on, BatchNorm statistics "
                                  "updating). Off: they run in eval mode, like the pretrained model at inference.")
    bn_stats: str = opt("auto", "Any strategy: BatchNorm statistics of layers that train. train: updated from each "
                        "batch with the layer's momentum (PyTorch's default); recalibrate: the same, then recomputed "
                        "from bn_recalibrate_batches training batches before every evaluation; frozen: the stored "
                        "statistics are used, scale and shift still train. auto: frozen when the head is "
                        "warm-started (lp_ft, warm_start_head) or under a PEFT method, recalibrate otherwise "
                        "(docs/strategies.md, 'BatchNorm').", ("auto", "train", "recalibrate", "frozen"))
    bn_recalibrate_batches: int = opt(20, "bn_stats recalibrate: training batches (a fixed seeded sample) that "
                                      "the statistics are recomputed from.")
    warm_start_head: Optional[bool] = opt(None, "Any strategy: first fit the head to convergence on cached frozen "
                                          "features (linear probing; LP-FT, Kumar et al. 2022). None (auto): on "
                                          "when a PEFT method trains a new classification head, and under strategy "
                                          "lp_ft; off otherwise. On MiniLM LoRA / R8 it took the first half-epoch "
                                          "test accuracy from 88% to 97% for an 81-105 s probe on 2 CPU cores.")
    probe_max_iter: int = opt(300, "Head warm start: L-BFGS iterations at most.")
    probe_weight_decay: float = opt(1e-4, "Head warm start: L2 penalty wd/2 * ||W||^2 on the head's weights.")


# --- parameter-efficient methods (docs/peft.md); each method reads only its own section -----------

ADAPTER_KINDS = ("houlsby", "pfeiffer")


NO_METHOD = "none"   # `method: none`: no PEFT method, the strategy alone decides what trains


def uses_method(cfg) -> bool:
    """Whether a PEFT method runs: it keeps the pretrained weights frozen, trains its own few parameters
    (and the head), and saves them as an adapter. Layers below peft (models, strategies) ask this."""
    return cfg.method not in (None, NO_METHOD)


@dataclass
class PeftOptions:
    train_head: bool = opt(True, "Train the task head together with the method's parameters. The head is new, so "
                           "it usually must; turn off only to reuse a trained head. (Causal LMs have no head.)")
    adapter_name: str = opt("default", "Name of the adapter this run trains (several named adapters can be "
                            "loaded on one base model later and switched, see docs/peft.md).")


@dataclass
class LoraOptions:
    r: int = opt(8, "Rank of the update B @ A.")
    alpha: float = opt(16.0, "Scaling numerator: the update is (alpha / r) * B @ A (rsLoRA: alpha / sqrt(r)).")
    dropout: float = opt(0.0, "Dropout on the input of the low-rank path (peft's default, 0: off; each adapted layer "
                          "otherwise keeps its own dropped copy of its input for the backward pass).")
    target_modules: list = opt(["auto"], "Modules to adapt: module names or name suffixes (`query`, "
                               "`encoder.layer.0.attention.self.value`), or one regex. `auto`: every linear layer of "
                               "the backbone (on non-transformer backbones such as CNNs, convolutions too); never the "
                               "head. A name that matches nothing is an error listing the names there are.")
    use_dora: bool = opt(False, "DoRA (Liu et al. 2024): learn a magnitude per output unit and a LoRA direction.")
    use_rslora: bool = opt(False, "rsLoRA (Kalajdzievski 2023): scale by alpha / sqrt(r), stable for large r.")
    lr: float = opt(5e-4, "Peak learning rate of the LoRA parameters and the head (train.lr stays the rate of "
                    "any existing parameter a strategy trains). Hu et al. 2021 used 4e-4 to 5e-4 on RoBERTa-base.")


@dataclass
class AdaLoraOptions:
    init_r: int = opt(12, "Starting rank of every adapted layer.")
    target_r: int = opt(8, "Average rank the budget shrinks to (the total budget is target_r x adapted layers).")
    alpha: float = opt(16.0, "Scaling numerator, as for LoRA.")
    dropout: float = opt(0.05, "Dropout on the input of the low-rank path.")
    target_modules: list = opt(["auto"], "As lora.target_modules (linear layers only).")
    tinit: float = opt(0.1, "Share of the run's steps trained at full rank before pruning starts.")
    tfinal: float = opt(0.2, "Share of the run's steps trained at the final ranks after pruning stops.")
    delta_t: int = opt(10, "Reallocate the rank budget every this many steps.")
    beta1: float = opt(0.85, "EMA factor of the sensitivity scores.")
    beta2: float = opt(0.85, "EMA factor of the uncertainty scores.")
    orth_reg_weight: float = opt(0.5, "Weight of the orthogonality penalty ||P^T P - I|| added to the loss.")
    lr: float = opt(1e-3, "Peak learning rate of the AdaLoRA parameters and the head (Zhang et al. 2023: 5e-4 to 1.2e-3).")


@dataclass
class PromptTuningOptions:
    num_virtual_tokens: int = opt(20, "Trainable soft-prompt vectors prepended to the input embeddings.")
    init_text: Optional[str] = opt(None, "Initialise the prompt from the embeddings of this text (None: random "
                                   "rows of the vocabulary embedding).")
    lr: float = opt(3e-2, "Peak learning rate of the prompt and the head (Lester et al. 2021 used 0.3 with Adafactor).")


@dataclass
class PrefixTuningOptions:
    num_virtual_tokens: int = opt(20, "Trainable key/value vectors prepended in every attention layer.")
    projection: bool = opt(False, "Reparametrise the prefix through a 2-layer MLP (Li & Liang 2021); more stable, "
                           "more parameters while training.")
    projection_hidden: int = opt(512, "Hidden width of that MLP.")
    init_text: str = opt("", "Causal LMs: start the prefix as the model's own keys and values of this text (its "
                         "first num_virtual_tokens tokens) instead of peft's random N(0, 1) vectors, which wreck "
                         "a small LM's output at first (SmolLM2 on Friends: perplexity 104 -> 1,752).")
    lr: float = opt(5e-3, "Peak learning rate of the prefix and the head.")


@dataclass
class AdapterOptions:
    kind: str = opt("houlsby", "houlsby: after attention and after the feed-forward block (Houlsby et al. 2019); "
                    "pfeiffer: after the feed-forward block only (Pfeiffer et al. 2021).", ADAPTER_KINDS)
    reduction_factor: int = opt(16, "Bottleneck width = hidden size / reduction_factor.")
    activation: str = opt("relu", "Non-linearity inside the bottleneck.", declared="adapter.activation")
    target_modules: list = opt(["auto"], "Modules whose output gets an adapter. auto: by architecture (attention "
                               "output and feed-forward output projections of HF transformers, each block of "
                               "EfficientNet, every linear/conv layer of other modules).")
    lr: float = opt(1e-3, "Peak learning rate of the adapters and the head (Houlsby et al.: 1e-4 to 1e-3).")


@dataclass
class BitFitOptions:
    lr: float = opt(1e-3, "Peak learning rate of the biases and the head (Ben Zaken et al. 2022: 1e-4 to 1e-3).")


@dataclass
class IA3Options:
    target_modules: list = opt(["auto"], "Modules whose activations are rescaled. auto: peft's choice for known "
                               "architectures (keys, values, feed-forward output), else every linear/conv layer.")
    feedforward_modules: list = opt(["auto"], "Subset of target_modules scaled on their input instead of their "
                                    "output (auto: peft's choice, else none).")
    lr: float = opt(3e-3, "Peak learning rate of the scaling vectors and the head (Liu et al. 2022, T-Few: 3e-3).")


# --- beyond single-task fine-tuning (docs/beyond.md); drivers built on fit() -----------------------

MT_SAMPLING = ("proportional", "temperature", "round_robin")
MT_WEIGHTING = ("fixed", "uncertainty")


@dataclass
class MultitaskOptions:
    tasks: list = opt(["reuters-r8", "20newsgroups", "drug-reviews"], "Packaged text datasets (or files with "
                      "text/label columns), one task and one head each, on one shared backbone.")
    train_subset: Optional[int] = opt(600, "Stratified training rows per task (None: all).")
    test_subset: Optional[int] = opt(400, "Stratified test rows per task (None: all).")
    task_train_sizes: list = opt([], "Optional, one per task: keep a stratified subset of this many of the loaded "
                                 "training rows (unequal sizes are what the sampling schemes differ on).")
    sampling: str = opt("temperature", "Which task each batch comes from: proportional to its size, "
                        "temperature (p_i ~ n_i^(1/T)), or round_robin.", MT_SAMPLING)
    temperature: float = opt(2.0, "sampling temperature T: 1 is proportional, large T approaches uniform.")
    weighting: str = opt("fixed", "Loss weights: fixed (loss_weights), or uncertainty (Kendall et al. 2018: "
                         "exp(-s_i) L_i + s_i, s_i = log sigma_i^2 learned).", MT_WEIGHTING)
    loss_weights: list = opt([], "weighting fixed: one weight per task (empty: all 1).")
    task_adapters: bool = opt(False, "Give each task its own bottleneck adapters inside the shared backbone "
                              "(after the layers adapter.target_modules picks; adapter.kind and adapter.activation "
                              "apply); each batch runs through its task's adapters only.")
    adapter_dim: int = opt(64, "task_adapters: bottleneck width (at most the width of the layer it follows).")
    single_task_baseline: bool = opt(True, "Also train each task alone with the same budget and report "
                                     "multi-task minus single-task (negative transfer when < 0).")
    cache_features: bool = opt(True, "Encode texts once with the frozen model.name backbone and train a shared "
                               "trunk (tunewright.zoo:mlp_trunk) and the heads on the cached features.")


@dataclass
class ContinualOptions:
    method: str = opt("naive", "naive fine-tuning; ewc / online_ewc (Kirkpatrick et al. 2017; Schwarz et al. "
                      "2018); replay (reservoir buffer); lwf (Li & Hoiem 2016); adapters (one bottleneck adapter per "
                      "task inside the backbone; the backbone is frozen after the first task, so earlier tasks "
                      "cannot be forgotten).", declared="continual.method")
    benchmark: str = opt("split-fashion-mnist", "split-fashion-mnist (5 tasks of 2 classes, on model.name: a "
                         "factory such as tunewright.zoo:small_cnn, or a pretrained image model such as "
                         "efficientnet-lite0 fine-tuned live at data.image_size) or text (the text_tasks sequence).",
                         ("split-fashion-mnist", "text"))
    text_tasks: list = opt(["reuters-r8", "20newsgroups", "drug-reviews"], "benchmark text: datasets in order.")
    cache_features: bool = opt(True, "benchmark text: encode texts once with the frozen model.name backbone and "
                               "train a trunk on the features; false: train model.name itself live, with "
                               "strategy and method applied (e.g. method: lora).")
    scenario: str = opt("task", "task: the task id is known and only its classes compete (task-incremental); "
                        "class: every class seen so far competes, no task id (class-incremental).", ("task", "class"))
    train_per_task: Optional[int] = opt(2000, "Stratified training rows per task (None: all).")
    test_per_task: Optional[int] = opt(1000, "Stratified test rows per task (None: all).")
    ewc_lambda: float = opt(100.0, "ewc: the penalty lambda/2 * sum_i F_i (w_i - w*_i)^2.")
    ewc_gamma: float = opt(0.9, "online_ewc: F <- gamma F_old + F_new (Schwarz et al. 2018).")
    fisher_batches: int = opt(20, "ewc: batches used to estimate the diagonal Fisher after each task.")
    buffer_size: int = opt(500, "replay: reservoir buffer capacity (examples).")
    replay_batch: int = opt(32, "replay: buffer examples mixed into every batch.")
    lwf_alpha: float = opt(1.0, "lwf: weight of the distillation term.")
    lwf_temperature: float = opt(2.0, "lwf: softmax temperature T (the term is scaled by T^2).")
    adapter_dim: int = opt(32, "adapters: bottleneck width of each task's adapters (at most the width of the "
                           "layer each follows; placed by adapter.target_modules, with adapter.activation).")


@dataclass
class MetaOptions:
    algorithm: str = opt("maml", "maml (second order, Finn et al. 2017), fomaml (first order), anil (inner loop "
                         "adapts the head only, Raghu et al. 2020), protonet (prototypes: class means of the "
                         "support embeddings, no inner loop; Snell et al. 2017).", declared="meta.algorithm")
    dataset: str = opt("fashion-mnist", "Whose classes are split into meta-train/test: a packaged image or text "
                       "dataset (text: train and test pooled, frozen model.name features), or a text/label file.")
    test_classes: list = opt([5, 6, 7, 8, 9], "Classes held out for meta-test (ids, or the label names of text "
                             "data); never sampled in meta-training.")
    n_way: int = opt(5, "Classes per episode.")
    k_shot: int = opt(5, "Labeled support examples per class.")
    q_queries: int = opt(15, "Query examples per class (the outer loss / the score).")
    meta_batch: int = opt(4, "Episodes per meta-update.")
    meta_iterations: int = opt(300, "Meta-updates.")
    inner_lr: float = opt(0.4, "Inner-loop SGD learning rate alpha.")
    inner_steps: int = opt(1, "Inner-loop steps during meta-training.")
    test_inner_steps: int = opt(10, "Inner-loop steps when adapting at test time.")
    test_episodes: int = opt(200, "Meta-test episodes (accuracy is reported with a 95% CI).")
    per_class: int = opt(300, "Examples kept per class (seeded), to bound memory and time.")
    min_per_class: int = opt(0, "Classes with fewer examples are in neither pool (they are listed); 0: k_shot + "
                             "q_queries, the fewest an episode needs.")
    trunk: str = opt("mlp", "Text: the trainable trunk over the frozen features, what meta-learns: mlp "
                     "(Linear(H, trunk_dim) + GELU), residual (x + a zero-initialised trunk_dim bottleneck: the "
                     "features themselves at the start) or scale (a per-feature weight and bias, 2H parameters).",
                     ("mlp", "residual", "scale"))
    trunk_dim: int = opt(256, "Text: width of the mlp trunk, or of the residual trunk's bottleneck.")
    zero_head: bool = opt(False, "Start every episode's inner loop from a zero head instead of a meta-learned one "
                          "(Kao et al. 2022's zeroing trick; labels are permuted per episode). Needed by anil "
                          "with few inner steps, whose head otherwise barely moves from its random start.")


@dataclass
class DomainOptions:
    method: str = opt("dann", "source_only, dann (Ganin et al. 2016), coral (Sun & Saenko 2016) or mmd "
                      "(Long et al. 2015).", declared="domain.method")
    source: str = opt("digits", "Labeled source: a packaged image dataset.")
    target: str = opt("mnist", "Target: a packaged image dataset; its labels are used only to score.")
    eval_fraction: float = opt(0.5, "Share of the target held out (labels only for scoring); the rest is the "
                               "unlabeled adaptation data.")
    weight: float = opt(1.0, "Weight of the alignment term added to the source loss.")
    dann_gamma: float = opt(10.0, "dann: lambda_p = 2 / (1 + exp(-gamma p)) - 1 over training progress p.")


@dataclass
class Config:
    run_name: str = opt("run", "Name of the run; output goes to <output_dir>/<run_name>/.")
    output_dir: str = opt("runs", "Folder that holds run folders.")
    task: str = opt("classification", "What the head predicts.", TASKS)
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The pretrained model."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Where the data comes from."})
    strategy: str = opt("full", "Which existing parameters train: full, feature_extraction, partial, "
                        "gradual_unfreezing (progressive_unfreezing), lp_ft (see docs/strategies.md).",
                        declared="strategy")
    strategy_options: StrategyOptions = field(default_factory=StrategyOptions,
                                              metadata={"help": "Options of the strategies (docs/strategies.md)."})
    method: str = opt("none", "Parameter-efficient method that adds parameters: none, lora, adalora, prompt_tuning, "
                      "prefix_tuning, adapter, bitfit or ia3 (see docs/peft.md).", declared="method")
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "Optimisation and evaluation."})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"help": "Resumable checkpoints."})
    distributed: DistributedConfig = field(default_factory=DistributedConfig,
                                           metadata={"help": "Several processes under torchrun (docs/scale.md)."})
    tracking: list = opt([], "Extra trackers besides metrics.jsonl (always written).", TRACKERS)
    compare: list = opt([], "Variants for `tunewright compare` (docs/choosing.md): strategy or method names "
                        "(`full`, `lora`), or mappings `{name: lora_r4, method: lora, lora.r: 4}` of dotted overrides.")
    search_space: dict = opt({}, "`tunewright tune`: dotted key -> `loguniform(a, b)`, `uniform(a, b)`, "
                             "`int(a, b)` or a list of choices, e.g. {train.lr: 'loguniform(1e-5, 1e-2)', lora.r: [4, 8]}.")
    peft: PeftOptions = field(default_factory=PeftOptions, metadata={"help": "Options shared by every method."})
    lora: LoraOptions = field(default_factory=LoraOptions, metadata={"help": "method: lora."})
    adalora: AdaLoraOptions = field(default_factory=AdaLoraOptions, metadata={"help": "method: adalora."})
    prompt_tuning: PromptTuningOptions = field(default_factory=PromptTuningOptions,
                                               metadata={"help": "method: prompt_tuning."})
    prefix_tuning: PrefixTuningOptions = field(default_factory=PrefixTuningOptions,
                                               metadata={"help": "method: prefix_tuning."})
    adapter: AdapterOptions = field(default_factory=AdapterOptions, metadata={"help": "method: adapter (bottleneck)."})
    bitfit: BitFitOptions = field(default_factory=BitFitOptions, metadata={"help": "method: bitfit."})
    ia3: IA3Options = field(default_factory=IA3Options, metadata={"help": "method: ia3."})
    multitask: MultitaskOptions = field(default_factory=MultitaskOptions,
                                        metadata={"help": "tunewright multitask (docs/beyond.md)."})
    continual: ContinualOptions = field(default_factory=ContinualOptions,
                                        metadata={"help": "tunewright continual (docs/beyond.md)."})
    meta: MetaOptions = field(default_factory=MetaOptions, metadata={"help": "tunewright meta-train / adapt "
                                                                     "(docs/beyond.md)."})
    domain: DomainOptions = field(default_factory=DomainOptions,
                                  metadata={"help": "tunewright domain-adapt (docs/beyond.md)."})
    federated: FederatedOptions = field(default_factory=FederatedOptions,
                                        metadata={"help": "tunewright federate (docs/federated.md)."})
