"""``read_data(cfg) -> RawData``: read, split, label and validate every split before any model
loads, so a typo in row 9,000 of the test file fails in a second, not after an hour of training.

The order of the steps, and why:

1. read train (a file, an image folder or a packaged name), then val and test if given;
   parse labels per task (bad ones are bad rows, see ``data.max_bad_rows``);
2. test: the given file, else the packaged test split, else ``test_fraction`` of train;
3. the label map from what train has left, BEFORE ``train_subset``: the label space does not
   change with the subset size (a 100-row subset of reuters-r52 cannot hold all 52 classes);
4. ``train_subset`` (stratified, seeded), then val: the given file, else ``val_fraction`` of
   the (subset) train, so a small subset also means a small, fast validation set;
5. ``test_subset``; then map val/test labels: a label never seen in train is an error.
"""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tunewright.assets.datasets import DATASETS, get_dataset
from tunewright.config.schema import Config
from tunewright.data.labels import assign_targets, build_label_map, label_kind, parse_labels
from tunewright.data.readers import BadRow, BadRowBudget, Columns, Example, read_file
from tunewright.data.splits import split_indices, subset_indices
from tunewright.errors import ConfigError, DataError

log = logging.getLogger("tunewright.data")
SPLITS = ("train", "val", "test")


@dataclass
class RawData:
    """Validated rows per split, before tokenization. A split may be None (``val_fraction: 0``).

    ``files[split]`` says where a split came from (a path, ``name:split`` for a packaged set,
    or ``"<n>% of train (...)"``); ``notes`` lists what was decided on the user's behalf
    (stratification fallbacks, packaged rows dropped); ``bad_rows`` every skipped row.
    """

    splits: dict[str, Optional[list[Example]]]
    files: dict[str, str]
    task: str
    modality: str                           # "text" | "image"
    label_names: Optional[list[str]]        # None for regression and causal_lm
    bad_rows: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def train(self) -> list[Example]:
        return self.splits["train"]

    @property
    def val(self) -> Optional[list[Example]]:
        return self.splits["val"]

    @property
    def test(self) -> Optional[list[Example]]:
        return self.splits["test"]


@dataclass
class _Source:
    rows: list[Example]
    where: str
    modality: str
    packaged: Optional[str] = None          # dataset name, when packaged
    others: Optional[dict] = None           # the packaged set's other splits (DataFrames)
    canonical: Optional[tuple] = None


def _columns(cfg: Config) -> Columns:
    d = cfg.data
    if cfg.task == "causal_lm":
        return Columns(((d.prompt_column, d.response_column), (d.text_column,)), None)
    return Columns(((d.text_column,),), d.label_column)


def _frame_rows(df, asset, split: str, cfg: Config) -> list[Example]:
    """Packaged DataFrame -> Examples, with the source file and line kept for tracing."""
    src = df.attrs.get("source", f"{asset.name}:{split}")
    has_label = "label" in df.columns and cfg.task != "causal_lm"
    labels = df["label"].tolist() if has_label else [None] * len(df)
    if asset.modality == "image":
        return [Example(src, int(ln), image=im, label=lb)
                for im, lb, ln in zip(df["image"], labels, df["line"])]
    return [Example(src, int(ln), text=t, label=lb)
            for t, lb, ln in zip(df["text"], labels, df["line"])]


def _packaged(name: str, split: str, cfg: Config, notes: list[str]) -> _Source:
    asset = get_dataset(name)
    if asset.modality == "lm_text" and cfg.task != "causal_lm":
        raise DataError(f"packaged dataset {name!r} has no labels; it is for task: causal_lm "
                        f"(task is {cfg.task!r})", path=name)
    frames = asset.load()
    df = frames.get(split)
    if df is None:       # e.g. test=mnist: the whole set is the (new-domain) test set
        split = "train"
        df = frames["train"]
    for line, reason in df.attrs.get("dropped", []):
        notes.append(f"{name}: dropped {df.attrs.get('source')}:{line} ({reason}) while loading")
    modality = "image" if asset.modality == "image" else "text"
    return _Source(_frame_rows(df, asset, split, cfg), f"{name}:{split}", modality, name,
                   frames, asset.label_names)


def _read(spec: str, split: str, cfg: Config, budget: BadRowBudget, notes: list[str]) -> _Source:
    """A split from a path (file or image folder) or a packaged dataset name."""
    path = Path(spec).expanduser()
    if not path.exists() and spec in DATASETS:
        return _packaged(spec, split, cfg, notes)
    if not path.exists():
        close = difflib.get_close_matches(spec, list(DATASETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"data.{split}: no such file or folder, and not a packaged dataset."
                        f"{hint} Packaged datasets: {', '.join(DATASETS)}", path=spec)
    rows = read_file(path, _columns(cfg), budget)
    if not rows:
        raise DataError(f"the {split} split is empty (no data rows)", path=str(path))
    return _Source(rows, str(path), "image" if path.is_dir() else "text")


def _check_task(task: str, src: _Source, split: str) -> None:
    if src.modality == "image" and task not in ("classification", "image_classification"):
        raise DataError(f"{split} data is images, which need task: image_classification "
                        f"(task is {task!r})", path=src.where)
    if src.modality == "text" and task == "image_classification":
        raise DataError(f"task is image_classification but the {split} data is text; give an "
                        "image folder (one subfolder per class) or a packaged image set",
                        path=src.where)


def _strata(rows: list[Example], task: str) -> Optional[list]:
    return [ex.label for ex in rows] if label_kind(task) == "class" else None


def _carve(rows: list[Example], fraction: float, what: str, where: str, cfg: Config,
           notes: list[str]) -> tuple[list[Example], list[Example]]:
    """Split ``fraction`` of rows off (stratified, seeded): (rest, held)."""
    try:
        keep, held, note = split_indices(len(rows), _strata(rows, cfg.task), fraction,
                                         cfg.train.seed)
    except ValueError as e:
        raise DataError(f"cannot take {what} ({fraction:.0%}) out of {len(rows)} training "
                        f"row(s): {e}", path=where) from None
    if note:
        notes.append(f"{what} split from train: {note}")
    elif label_kind(cfg.task) in ("multi", "float"):
        notes.append(f"{what} split from train: unstratified (task is {cfg.task})")
    if not held or not keep:
        raise DataError(f"{len(rows)} training row(s) are too few to take {what} "
                        f"({fraction:.0%}) from", path=where)
    return [rows[i] for i in keep], [rows[i] for i in held]


def _subset(splits: dict, split: str, size: Optional[int], cfg: Config,
            notes: list[str]) -> None:
    rows = splits[split]
    if size is None or rows is None or size >= len(rows):
        return
    keep, note = subset_indices(len(rows), _strata(rows, cfg.task), size, cfg.train.seed)
    splits[split] = [rows[i] for i in keep]
    notes.append(f"{split}_subset: {len(keep)} of {len(rows)} rows"
                 + (f" ({note})" if note else " (stratified)" if _strata(rows, cfg.task) else ""))


def _check_config(cfg: Config) -> None:
    d = cfg.data
    for key in ("val_fraction", "test_fraction"):
        v = getattr(d, key)
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"data.{key}={v!r}: must be in [0, 1) (0: no such split)")
    for key in ("train_subset", "test_subset"):
        v = getattr(d, key)
        if v is not None and v < 1:
            raise ConfigError(f"data.{key}={v!r}: must be a positive number of rows, or null")
    if d.max_bad_rows < 0:
        raise ConfigError(f"data.max_bad_rows={d.max_bad_rows!r}: must be >= 0")
    if not d.train:
        raise ConfigError("data.train is empty: give a file, an image folder or a packaged "
                          f"dataset ({', '.join(DATASETS)})")


def read_data(cfg: Config) -> RawData:
    """Read and validate every split (see the module docstring for the steps)."""
    _check_config(cfg)
    d, task, notes = cfg.data, cfg.task, []
    budget = BadRowBudget(d.max_bad_rows)
    column = d.label_column

    train_src = _read(d.train, "train", cfg, budget, notes)
    _check_task(task, train_src, "train")
    splits: dict[str, Optional[list[Example]]] = {"train": train_src.rows}
    files = {"train": train_src.where}
    for split in ("val", "test"):
        spec = getattr(d, split)
        if spec and not (train_src.packaged == spec and
                         (train_src.others or {}).get(split) is None):
            src = _read(spec, split, cfg, budget, notes)
            _check_task(task, src, split)
            if src.modality != train_src.modality:
                raise DataError(f"{split} data is {src.modality} but train data is "
                                f"{train_src.modality}", path=src.where)
            splits[split], files[split] = src.rows, src.where
    for split in list(splits):
        splits[split] = parse_labels(splits[split], task, column, budget)
        if not splits[split]:
            raise DataError(f"the {split} split has no usable rows (all were bad rows)",
                            path=files[split])

    if "test" not in splits:
        packaged_test = (train_src.others or {}).get("test")
        if packaged_test is not None:
            asset = get_dataset(train_src.packaged)
            splits["test"] = parse_labels(_frame_rows(packaged_test, asset, "test", cfg), task,
                                          column, budget)
            files["test"] = f"{train_src.packaged}:test"
        elif d.test_fraction > 0:
            splits["train"], splits["test"] = _carve(splits["train"], d.test_fraction, "test",
                                                     files["train"], cfg, notes)
            files["test"] = f"{d.test_fraction:.0%} of train ({files['train']})"
        else:
            splits["test"] = None

    label_names = build_label_map(splits["train"], task, train_src.canonical)
    _subset(splits, "train", d.train_subset, cfg, notes)
    if "val" not in splits:
        if d.val_fraction > 0:
            splits["train"], splits["val"] = _carve(splits["train"], d.val_fraction, "val",
                                                    files["train"], cfg, notes)
            files["val"] = f"{d.val_fraction:.0%} of train ({files['train']})"
        else:
            splits["val"] = None
    _subset(splits, "test", d.test_subset, cfg, notes)

    for split in SPLITS:
        if splits[split] is not None:
            splits[split] = assign_targets(splits[split], task, label_names, split, column,
                                           budget)
            if not splits[split]:
                raise DataError(f"the {split} split has no usable rows", path=files[split])

    for note in notes:
        log.info(note)
    if budget.rows:
        log.warning("skipped %d bad row(s) (data.max_bad_rows=%d)", len(budget.rows),
                    d.max_bad_rows)
    modality = train_src.modality
    return RawData({s: splits[s] for s in SPLITS}, files, task, modality, label_names,
                   budget.rows, notes)


def read_split(spec: str, cfg: Config, label_names: Optional[list[str]], split: str = "test") -> RawData:
    """One split read against a finished run's label map (``tunewright eval RUN --data SPEC``).

    A packaged name gives its own ``split`` (falling back to train when it has none). Labels the
    run never saw are bad rows naming file, line and value, exactly as in training.
    """
    budget, notes = BadRowBudget(cfg.data.max_bad_rows), []
    src = _read(spec, split, cfg, budget, notes)
    _check_task(cfg.task, src, split)
    rows = parse_labels(src.rows, cfg.task, cfg.data.label_column, budget)
    rows = assign_targets(rows, cfg.task, label_names, split, cfg.data.label_column, budget)
    if not rows:
        raise DataError(f"the {split} split has no usable rows", path=src.where)
    splits = {s: (rows if s == split else None) for s in SPLITS}
    return RawData(splits, {split: src.where}, cfg.task, src.modality, label_names, budget.rows, notes)
