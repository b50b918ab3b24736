"""tunewright lr-find CONFIG [key.sub=value ...] [--start 1e-7] [--end 10] [--steps 100] [--out PNG]

The LR range test (optim/lr_find.py) on the run the config describes: the same model, strategy,
method, param groups and (for feature_extraction / partial) the same feature cache. With gradual
unfreezing it sweeps the first phase, where only the head trains.
"""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="Exponential LR sweep: plot loss against LR and suggest an LR.")
    p.add_argument("config", help="YAML recipe.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as strategy=feature_extraction")
    p.add_argument("--start", type=float, default=1e-7, help="Lowest LR of the sweep.")
    p.add_argument("--end", type=float, default=10.0, help="Highest LR of the sweep.")
    p.add_argument("--steps", type=int, default=100,
                   help="Optimizer steps in the sweep (it stops early on divergence).")
    p.add_argument("--out", help="PNG to write (default: <output_dir>/<run_name>/lr_find.png).")
    p.set_defaults(func=run)


def batch_stream(data, cfg, device):
    """Training batches in the run's order, epoch after epoch, for as long as the sweep asks."""
    from ..data import epoch_batches
    from ..data.collate import to_device

    epoch = 0
    while True:
        for idx in epoch_batches(len(data.train), cfg.train.batch_size, cfg.train.seed, epoch,
                                 lengths=data.lengths if cfg.data.bucket else None):
            yield to_device(data.collate([data.train[i] for i in idx]), device)
        epoch += 1


def run(args) -> int:
    from ..optim.lr_find import lr_find, plot_lr_find
    from ..run import as_config, assemble, fit_data, start_state
    from ..training.losses import loss_for
    from .show import print_table

    cfg = as_config(args.config, args.overrides)
    asm = assemble(cfg)
    data, _ = fit_data(asm, cfg)                  # the same feature cache / warm start as train
    start_state(asm)                              # gradual unfreezing: only the head trains at first
    result = lr_find(data.model, asm.optimizer, batch_stream(data, cfg, asm.device),
                     loss_for(cfg.task, cfg.train.label_smoothing), start=args.start, end=args.end, num=args.steps)
    out = Path(args.out) if args.out else Path(cfg.output_dir) / cfg.run_name / "lr_find.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_lr_find(result, out, title=f"LR finder: {cfg.model.name}, {cfg.strategy}")
    out.with_suffix(".json").write_text(json.dumps(
        {"lrs": result.lrs, "losses": result.losses, "raw_losses": result.raw_losses, "suggestion": result.suggestion,
         "start": result.start, "end": result.end, "stopped_early": result.stopped_early}))
    rows = [("swept", f"{result.lrs[0]:.2e} .. {result.lrs[-1]:.2e} in {len(result.lrs)} steps"
                      + (" (stopped: loss diverged)" if result.stopped_early else "") if result.lrs else "no step"),
            ("suggested lr", f"{result.suggestion:.2e}" if result.suggestion is not None else "none (too few points)")]
    print_table(f"lr-find: {args.config}", rows)
    print(f"written: {out}")
    return 0
