"""``build_data(raw, preprocessor, cfg) -> DataBundle``: tokenize / wrap every split once.

The bundle is everything the training loop and the evaluators need about the data: datasets
of example dicts, the collator, lengths for bucketing, class counts for imbalance handling,
and, per split, where each row came from (``source``) and what it looked like (``raw_inputs``)
so a prediction can be traced back to its file and line in a failure-case report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from tunewright.config.schema import Config
from tunewright.data.collate import Collator, pad_id_of
from tunewright.data.images import ImageDataset, ImagePreprocessor
from tunewright.data.read import SPLITS, RawData
from tunewright.data.readers import BadRow
from tunewright.data.text import render_prompt, token_ids, tokenize_examples
from tunewright.errors import DataError


class ExampleDataset(Dataset):
    """A list of ready example dicts (tokenized text: ``input_ids`` list[int], ``labels``)."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


@dataclass
class DataBundle:
    """The data side of a run. Absent splits (``val_fraction: 0``) are None / missing keys.

    - ``train/val/test``: Datasets of example dicts; ``collate`` batches them.
    - ``lengths[split]``: tokens per example (None for images), for ``epoch_batches``.
    - ``targets[split]``: per example, the class index, the float, the list of class indices
      (multilabel) or None (causal LM); ground truth for metrics without a pass over batches.
    - ``class_counts``: train rows per class (multilabel: positives per class), else None.
    - ``source[split][i]``: (file, 1-based line or None) of example i; ``raw_inputs[split][i]``:
      its text, prompt or image path.
    """

    train: Dataset
    val: Optional[Dataset]
    test: Optional[Dataset]
    label_names: Optional[list[str]]
    num_labels: Optional[int]               # C; 1 for regression; None for causal LM
    modality: str                           # "text" | "image"
    task: str
    collate: Collator
    lengths: dict[str, Optional[list[int]]]
    class_counts: Optional[list[int]]
    bad_rows: list[BadRow]
    source: dict[str, list[tuple[str, Optional[int]]]]
    raw_inputs: dict[str, list]
    targets: dict[str, list]
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> Optional[Dataset]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _num_labels(raw: RawData) -> Optional[int]:
    if raw.task == "causal_lm":
        return None
    if raw.task == "regression":
        return 1
    return len(raw.label_names)


def _class_counts(raw: RawData, num_labels: Optional[int]) -> Optional[list[int]]:
    if raw.train is None:  # an evaluation-only bundle (read_split)
        return None
    if raw.task in ("classification", "image_classification"):
        return np.bincount([ex.target for ex in raw.train], minlength=num_labels).tolist()
    if raw.task == "multilabel":
        flat = [i for ex in raw.train for i in ex.target]
        return np.bincount(np.asarray(flat, dtype=np.int64), minlength=num_labels).tolist()
    return None


def _check_preprocessor(raw: RawData, preprocessor: Any) -> None:
    if raw.modality == "image" and not callable(preprocessor):
        raise TypeError("image data needs a callable preprocessor (an ImagePreprocessor)")
    if raw.modality == "text" and (isinstance(preprocessor, ImagePreprocessor)
                                   or not callable(preprocessor)):
        raise TypeError("text data needs a Hugging Face tokenizer as its preprocessor, got "
                        f"{type(preprocessor).__name__}")


def token_limit(preprocessor: Any, cfg: Config) -> int:
    """``data.max_length``, but never more than the tokenizer's ``model_max_length`` (the model's
    position table: MiniLM 512): longer rows would index past it and fail inside the model."""
    limit = getattr(preprocessor, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:   # unset limits are huge sentinels (1e30)
        return min(cfg.data.max_length, limit)
    return cfg.data.max_length


def build_data(raw: RawData, preprocessor: Any, cfg: Config) -> DataBundle:
    """Tokenize each text split once (batched; truncation to ``data.max_length``, no padding),
    or wrap image splits for lazy preprocessing at ``__getitem__``."""
    _check_preprocessor(raw, preprocessor)
    num_labels = _num_labels(raw)
    datasets: dict[str, Optional[Dataset]] = {}
    lengths, source, raw_inputs, targets = {}, {}, {}, {}
    notes = list(raw.notes)
    limit = token_limit(preprocessor, cfg) if raw.modality == "text" else None
    if limit is not None and limit < cfg.data.max_length:
        notes.append(f"data.max_length {cfg.data.max_length} is above the model's limit of {limit} tokens; "
                     f"texts are cut to that")
    for split in SPLITS:
        rows = raw.splits[split]
        if rows is None:
            datasets[split] = None
            continue
        ys = [ex.target for ex in rows] if raw.task != "causal_lm" else [None] * len(rows)
        if raw.modality == "image":
            datasets[split] = ImageDataset([ex.image for ex in rows], ys, preprocessor,
                                           train=(split == "train"))
            lengths[split] = None
        else:
            items = tokenize_examples(preprocessor, rows, raw.task, limit)
            datasets[split] = ExampleDataset(items)
            lengths[split] = [len(it["input_ids"]) for it in items]
        source[split] = [(ex.path, ex.line) for ex in rows]
        raw_inputs[split] = [ex.raw_input for ex in rows]
        targets[split] = ys
    pad_id = pad_id_of(preprocessor) if raw.modality == "text" else 0
    return DataBundle(
        train=datasets["train"], val=datasets["val"], test=datasets["test"],
        label_names=raw.label_names, num_labels=num_labels, modality=raw.modality,
        task=raw.task, collate=Collator(raw.task, pad_id, num_labels, cfg.data.pad_to_multiple_of), lengths=lengths,
        class_counts=_class_counts(raw, num_labels), bad_rows=list(raw.bad_rows),
        source=source, raw_inputs=raw_inputs, targets=targets, files=dict(raw.files),
        notes=notes)


def encode_inputs(preprocessor: Any, inputs: Sequence[Any], cfg: Config,
                  as_prompt: bool = False) -> list[dict]:
    """Unlabelled inputs -> example dicts for ``Collator`` (``tunewright predict``).

    Texts are tokenized exactly as in training (same truncation). Images (paths, uint8 arrays
    or PIL images) become ``pixel_values`` now: prediction sets are small. ``as_prompt``
    (causal LM): render each text with the chat template first, as instruction tuning did.
    """
    if isinstance(preprocessor, ImagePreprocessor) or cfg.task == "image_classification":
        out = []
        for x in inputs:
            try:
                out.append({"pixel_values": preprocessor(x)})
            except (OSError, SyntaxError, ValueError) as e:
                raise DataError(f"unreadable image: {type(e).__name__}: {e}",
                                path=str(x) if isinstance(x, str) else None) from None
        return out
    texts = [render_prompt(preprocessor, t) if as_prompt else t for t in inputs]
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()), None)
    if bad is not None:
        raise DataError(f"input {bad + 1} is empty or not text: {texts[bad]!r}")
    # a rendered chat template already holds its special tokens (as in instruction tuning)
    templated = as_prompt and bool(getattr(preprocessor, "chat_template", None))
    ids = token_ids(preprocessor, texts, token_limit(preprocessor, cfg), add_special_tokens=not templated)
    return [{"input_ids": list(x)} for x in ids]
