"""tunewright lr-plot CONFIG [key.sub=value ...] [--out PNG]: the LR of every param group, step by
step, drawn before training. Groups that gradual unfreezing holds frozen are drawn dotted until
the epoch they unfreeze (their LR is scheduled all along, so they start at exactly that value)."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("lr-plot", help="Draw the LR schedule of every param group to a PNG, before training.")
    p.add_argument("config", help="YAML recipe.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as train.schedule=one_cycle")
    p.add_argument("--out", help="PNG to write (default: <output_dir>/<run_name>/lr_schedule.png).")
    p.set_defaults(func=run)


def curves(asm) -> list[dict]:
    """One curve per distinct (param group name without /no_decay, LR multiple): its LR at every step."""
    fn = asm.scheduler.lr_lambdas[0]               # the pure multiplier (optim/schedules.py)
    mult = [fn(s) for s in range(asm.total_steps)]
    out: dict[tuple, dict] = {}
    for g in asm.optimizer.param_groups:
        name = g.get("name", "group").removesuffix("/no_decay")
        name = "all" if name in ("decay", "no_decay") else name      # no layer groups: one curve
        key = (name, g["initial_lr"])
        if key not in out:
            out[key] = {"name": name, "peak_lr": g["initial_lr"], "lr": [g["initial_lr"] * m for m in mult],
                        "params": 0}
        out[key]["params"] += sum(p.numel() for p in g["params"])
    return list(out.values())


def unfreeze_steps(asm, n_train: int, cfg) -> dict[str, int | None]:
    """layer group -> the step it starts training, when a callback unfreezes on a schedule."""
    from ..training.loop import step_counts
    _, per_epoch, _ = step_counts(n_train, cfg.train)
    for p in asm.plans:
        if p.unfreezing is not None:
            return {g: (None if e is None else e * per_epoch) for g, e in p.unfreezing.unfreeze_epochs().items()}
    return {}


def plot(rows: list[dict], starts: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for i, row in enumerate(rows):
        start = starts.get(row["name"], 0)
        steps = range(len(row["lr"]))
        color = f"C{i % 10}"
        if start is None or start > 0:             # frozen until `start` (None: a plateau decides)
            cut = len(row["lr"]) if start is None else min(start, len(row["lr"]))
            ax.plot(steps[:cut + 1], row["lr"][:cut + 1], ":", color=color, lw=1)
            when = "on a plateau" if start is None else f"from step {start}"
            ax.plot(steps[cut:], row["lr"][cut:], color=color, lw=2, label=f"{row['name']} ({when})")
        else:
            ax.plot(steps, row["lr"], color=color, lw=2, label=row["name"])
    peaks = [r["peak_lr"] for r in rows]
    if max(peaks) / max(min(peaks), 1e-30) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2 if len(rows) > 6 else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> int:
    from ..run import as_config, assemble
    from .show import print_table

    cfg = as_config(args.config, args.overrides)
    asm = assemble(cfg)
    rows = curves(asm)
    starts = unfreeze_steps(asm, len(asm.bundle.train), cfg)
    out = Path(args.out) if args.out else Path(cfg.output_dir) / cfg.run_name / "lr_schedule.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{cfg.train.schedule} schedule, {cfg.strategy}, {asm.total_steps} steps"
    plot(rows, starts, out, title)
    out.with_suffix(".json").write_text(json.dumps(
        {"schedule": cfg.train.schedule, "total_steps": asm.total_steps, "groups": rows, "unfreeze_step": starts}))
    print_table(f"lr-plot: {title}",
                [(r["name"], f"peak {r['peak_lr']:.3g}, {r['params']:,} params"
                  + (f", unfreezes at step {starts[r['name']]}" if starts.get(r["name"]) else "")) for r in rows])
    print(f"written: {out}")
    return 0
