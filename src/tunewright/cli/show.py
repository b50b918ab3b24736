"""Printing results for people: a rich table on a terminal, plain aligned text otherwise."""
from __future__ import annotations

from pathlib import Path


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    rows = []
    for split in ("test", "val"):
        for k, v in summary.get(split, {}).items():
            rows.append((f"{split} {k}", _fmt(v)))
    tp, tot = summary.get("trainable_params"), summary.get("total_params")
    if tp is not None:
        rows.append(("trainable / total params", f"{tp:,} / {tot:,} ({100 * tp / max(tot, 1):.2f}%)"))
    for key, label, unit in [("train_seconds", "train time", " s"), ("peak_rss_mb", "peak memory (RSS)", " MB"),
                             ("samples_per_s", "throughput", " samples/s"), ("best_epoch", "best after epoch", ""),
                             ("precision", "precision", ""), ("bad_rows", "bad rows skipped", "")]:
        v = summary.get(key)
        if v is not None:
            rows.append((label, f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"))
    return rows


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def print_summary(summary: dict, run_dir: Path | str) -> None:
    print_table(f"tunewright run: {run_dir}", summary_rows(summary) + [("run folder", str(run_dir))])
