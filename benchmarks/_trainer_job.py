"""The job bench_trainer.py measures, as every variant sees it: the benchmark config, the variant
pairs, the rows (tunewright's seeded stratified subset) and the digest that proves all variants
trained on the same rows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

# measurement -> (tunewright variant, peer variant, goal for tunewright/peer samples/s)
MEASUREMENTS = {
    "A": ("tunewright_fixed", "hand_fixed", 0.95),
    "B": ("tunewright", "hf_trainer", 1.20),
}
VARIANTS = ("tunewright_fixed", "hand_fixed", "tunewright", "hf_trainer")
# torch's CPU allocator on huge pages (tunewright/huge_pages.py), set per child explicitly: tunewright's
# default for its own variants and for the hand loop of A (a loop-overhead comparison wants the same
# allocator on both sides); torch's own default, off, for the Trainer of B.
HUGE_PAGES_ENV = {"tunewright_fixed": {"THP_MEM_ALLOC_ENABLE": "1"}, "hand_fixed": {"THP_MEM_ALLOC_ENABLE": "1"},
                  "tunewright": {"THP_MEM_ALLOC_ENABLE": "1"}, "hf_trainer": {"THP_MEM_ALLOC_ENABLE": "0"}}
MEASUREMENT_OF = {v: m for m, pair in MEASUREMENTS.items() for v in pair[:2]}


@dataclass
class BenchConfig:
    model: str = "minilm"            # a packaged tunewright model name (minilm, tiny-bert)
    dataset: str = "reuters-r8"
    steps: int = 20                  # timed optimizer steps per variant
    warmup: int = 2                  # untimed steps first (allocator, kernels, optimizer state)
    batch_size: int = 32
    max_length: int = 128
    lr: float = 5e-5
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    threads: int = 2

    @property
    def rows(self) -> int:
        return (self.warmup + self.steps) * self.batch_size  # one epoch, every batch full


def model_dir(cfg: BenchConfig) -> str:
    """The ordinary HF folder of the packaged model (what the hand loop and the Trainer load)."""
    from tunewright.assets import get_model_asset
    return str(get_model_asset(cfg.model).prepare())


def subset(cfg: BenchConfig) -> tuple[list[str], list[str]]:
    """(texts, labels) of the benchmark rows: tunewright's seeded stratified subset of the train split."""
    from tunewright.assets import get_dataset
    from tunewright.data import subset_indices
    df = get_dataset(cfg.dataset).load()["train"]
    keep, _ = subset_indices(len(df), df["label"].tolist(), cfg.rows, cfg.seed)
    return df["text"].iloc[keep].tolist(), [str(x) for x in df["label"].iloc[keep]]


def label_names(cfg: BenchConfig) -> list[str]:
    """Every class of the train split (a small subset may miss some; the head is sized for all)."""
    from tunewright.assets import get_dataset
    return sorted({str(x) for x in get_dataset(cfg.dataset).load()["train"]["label"]})


def rows_digest(texts) -> str:
    """Order-free fingerprint of the rows a variant trains on (all variants must agree)."""
    return hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:16]


def trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
