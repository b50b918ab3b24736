"""tunewright predict RUN_DIR INPUT... [--output out.jsonl]

INPUT is a CSV/TSV/JSONL file (the run's text column is read; other columns are passed through) or
one or more image paths. Each output row has the input, the predicted label and the probabilities
(classification), the value (regression), or the generated text (causal LM: use `generate` for control).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="Predict with a finished run's best model.")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="+", help="A CSV/TSV/JSONL file, or image paths.")
    p.add_argument("--output", help="Write JSONL here (default: standard output).")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=run)


def read_inputs(paths: list[str], cfg) -> tuple[list, list[dict]]:
    """(model inputs, pass-through row info) from a table file or image paths."""
    from ..data.readers import BadRowBudget, Columns, read_file
    from ..errors import DataError

    if all(Path(p).suffix.lower() in IMAGE_EXT for p in paths):
        for p in paths:
            if not Path(p).is_file():
                raise DataError("no such image file", path=p)
        return list(paths), [{"input": p} for p in paths]
    if len(paths) != 1:
        raise DataError("give one CSV/TSV/JSONL file, or only image paths", path=", ".join(paths))
    path = Path(paths[0])
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    # Labels are optional at prediction time: an absent label column is fine.
    cols = Columns(alternatives=((cfg.data.text_column,),), label=None)
    rows = read_file(path, cols, BadRowBudget(cfg.data.max_bad_rows))
    if not rows:
        raise DataError("no rows to predict", path=str(path))
    return [r.raw_input for r in rows], [{"input": r.raw_input, "line": r.line} for r in rows]


def run(args) -> int:
    import numpy as np
    import torch

    from ..data import Collator, encode_inputs, pad_id_of
    from ..evaluate import predict_logits
    from ..run import load_run, run_config
    from ..training.precision import resolve_device, resolve_precision

    cfg, _ = run_config(args.run_dir)
    inputs, info = read_inputs(args.inputs, cfg)          # bad input fails here, before any model loads
    cfg, model, preprocessor, meta = load_run(args.run_dir)
    precision = resolve_precision(cfg.train.precision, resolve_device(cfg.train.device),
                                  cfg.train.cudnn_attention)
    model.to(precision.device)
    examples = encode_inputs(preprocessor, inputs, cfg)
    labels = meta.get("label_names")
    pad = pad_id_of(preprocessor) if "input_ids" in examples[0] else 0
    collate = Collator(cfg.task, pad, len(labels) if labels else None, cfg.data.pad_to_multiple_of)
    logits, _ = predict_logits(model, examples, collate, args.batch_size, precision)
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        for row, lg in zip(info, logits):
            if cfg.task in ("classification", "image_classification"):
                p = torch.softmax(torch.from_numpy(np.asarray(lg)), -1).numpy()
                row.update(label=labels[int(p.argmax())], score=float(p.max()),
                           probs={labels[i]: round(float(v), 6) for i, v in enumerate(p)})
            elif cfg.task == "multilabel":
                p = 1 / (1 + np.exp(-np.asarray(lg)))
                row.update(labels=[labels[i] for i in np.flatnonzero(p > 0.5)],
                           probs={labels[i]: round(float(v), 6) for i, v in enumerate(p)})
            elif cfg.task == "regression":
                row.update(value=float(np.asarray(lg).reshape(-1)[0]))
            else:
                raise SystemExit("causal LM runs: use `tunewright generate RUN_DIR PROMPT`")
            out.write(json.dumps(row) + "\n")
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote {len(info)} predictions to {args.output}", file=sys.stderr)
    return 0
