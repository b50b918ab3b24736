"""Labels: parse them per task, build the label map from TRAIN, map every split through it.

- classification (and image_classification): a label is a class name. Integers are class names
  too (JSON ``3`` and CSV ``"3"`` are the same class), so the map is the same whatever the file
  format. Names sort numerically when they all are numbers (``2`` before ``10``), else as strings.
- multilabel: a JSON list, or a string ``"a|b"`` (``""`` means no label); targets are multi-hot.
- regression: a float; ``"abc"``, NaN and inf are errors at file:line.
- causal_lm: no labels.

A val/test label never seen in training is an error naming file, line, value and the known
labels: a model cannot predict a class it has no output for.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

from tunewright.data.readers import BadRowBudget, Example
from tunewright.errors import DataError

LABEL_KINDS = {"classification": "class", "image_classification": "class",
               "multilabel": "multi", "regression": "float", "causal_lm": None}
_INT = re.compile(r"[+-]?\d+")


def label_kind(task: str) -> Optional[str]:
    return LABEL_KINDS[task]


def class_key(value: Any) -> str:
    """The class name of a label value; ValueError for values that cannot be one."""
    if isinstance(value, bool):        # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"label {value!r} is not a class")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        if value.strip() == "":
            raise ValueError("empty label")
        return value.strip()
    raise ValueError(f"a class label must be a string or number, got {type(value).__name__} "
                     f"{value!r} (multilabel data needs task: multilabel)")


def multi_keys(value: Any) -> list[str]:
    """A multilabel value -> its class names: a JSON list or an ``a|b`` string."""
    if isinstance(value, str):
        return [p.strip() for p in value.split("|") if p.strip()]
    if isinstance(value, (list, tuple)):
        return [class_key(v) for v in value]
    raise ValueError(f"a multilabel label must be a list or an 'a|b' string, got {value!r}")


def float_label(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"regression label {value!r} is not a number")
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"regression label {value!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"regression label {value!r} is not finite")
    return out


_PARSERS = {"class": class_key, "multi": multi_keys, "float": float_label}


def parse_labels(rows: list[Example], task: str, column: str,
                 budget: BadRowBudget) -> list[Example]:
    """Replace each raw ``label`` by its parsed form; bad ones go through the budget."""
    kind = label_kind(task)
    if kind is None:
        return rows
    out = []
    for ex in rows:
        try:
            if ex.label is None:
                raise ValueError("missing label")
            ex.label = _PARSERS[kind](ex.label)
        except ValueError as e:
            budget.skip(DataError(str(e), path=ex.path, line=ex.line, column=column))
            continue
        out.append(ex)
    return out


def sort_names(names: set[str]) -> list[str]:
    """Numeric order when every name is a number (``2`` < ``10``), else string order."""
    def as_float(s: str) -> Optional[float]:
        try:
            return float(s)
        except ValueError:
            return None
    if all(_INT.fullmatch(n) for n in names):
        return sorted(names, key=int)
    if all(as_float(n) is not None for n in names):
        return sorted(names, key=float)
    return sorted(names)


def build_label_map(train: Sequence[Example], task: str,
                    canonical: Optional[Sequence[str]] = None) -> Optional[list[str]]:
    """Class names from the TRAIN rows, in a stable order; None for regression and causal LM.

    ``canonical``: the dataset's own class order (e.g. Fashion-MNIST's index order), used when
    it covers every train label.
    """
    kind = label_kind(task)
    if kind not in ("class", "multi"):
        return None
    names: set[str] = set()
    for ex in train:
        names.update(ex.label if kind == "multi" else (ex.label,))
    if canonical is not None:
        canonical = [class_key(c) for c in canonical]
        if names <= set(canonical):
            return canonical
    if kind == "class":
        _refuse_measurements(train, names)
    return sort_names(names)


def _refuse_measurements(train: Sequence[Example], names: set[str]) -> None:
    """A classification label column of fractional numbers with about one value per row is a measurement,
    not a set of classes: each value would become its own class. Say so rather than train that.
    (Fractional classes that repeat, such as star ratings 1.5 ... 5.0, are left alone.)"""
    def number(n: str) -> Optional[float]:
        try:
            x = float(n)
        except ValueError:
            return None
        return x if math.isfinite(x) else None

    def fractional(n: str) -> bool:
        x = number(n)
        return x is not None and not x.is_integer()
    if (len(names) <= max(2, len(train) // 2) or any(number(n) is None for n in names)
            or not any(map(fractional, names))):
        return
    first = next(ex for ex in train if fractional(str(ex.label)))
    raise DataError(f"the label column holds {len(names)} distinct fractional numbers in {len(train)} rows (e.g. "
                    f"{first.label!r}); as classes each would be its own class. For numbers to predict, use "
                    f"task: regression", path=first.path, line=first.line)


def _known(label_names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in label_names[:30])
    return shown + (f", ... ({len(label_names)} in all)" if len(label_names) > 30 else "")


def assign_targets(rows: list[Example], task: str, label_names: Optional[list[str]], split: str,
                   column: str, budget: BadRowBudget) -> list[Example]:
    """Set ``ex.target``: class index (int), list of class indices (multilabel), or the float.

    A label outside ``label_names`` is a bad row naming file, line, value and the known labels.
    """
    kind = label_kind(task)
    if kind is None:
        return rows
    index = {n: i for i, n in enumerate(label_names or [])}
    out = []
    for ex in rows:
        if kind == "float":
            ex.target = ex.label
            out.append(ex)
            continue
        values = ex.label if kind == "multi" else [ex.label]
        unseen = [v for v in values if v not in index]
        if unseen:
            budget.skip(DataError(f"{split} label {unseen[0]!r} never appears in the training "
                                  f"data; known labels: {_known(label_names)}", path=ex.path,
                                  line=ex.line, column=column))
            continue
        ex.target = [index[v] for v in values] if kind == "multi" else index[ex.label]
        out.append(ex)
    return out
