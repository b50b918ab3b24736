"""Printing results for people: rich tables on a terminal, plain aligned text otherwise.

Nothing is ever cut. Not a terminal (a pipe, a log file): plain text, one line per row, as wide as
the row needs. A terminal: a rich table when it fits the terminal's width; else the columns are
split into several tables that each fit (the first column repeated in each); else, when a single
column is wider than the terminal, one block per row with its values wrapped at word boundaries.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Sequence


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
                             ("precision", "precision", ""), ("machine", "machine", ""),
                             ("bad_rows", "bad rows skipped", "")]:
        v = summary.get(key)
        if v is not None:
            rows.append((label, f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"))
    return rows


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def terminal_width(stream=None) -> int:
    from rich.console import Console
    return Console(file=stream or sys.stdout).width      # COLUMNS, else the terminal's size


def plain_lines(title: str, headers: Sequence[str] | None, rows: Sequence[Sequence[str]],
                right: Sequence[bool]) -> list[str]:
    """Aligned text with two spaces between columns, as wide as it needs to be."""
    table = ([list(headers)] if headers else []) + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))] if table else []
    lines = [title] if title else []
    for r in table:
        cells = [c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _table_width(widths: Sequence[int]) -> int:
    return sum(w + 2 for w in widths) + len(widths) + 1   # rich's box: one space of padding each side, borders


def column_groups(widths: Sequence[int], width: int) -> list[list[int]] | None:
    """Column indices split into tables that each fit `width`, column 0 in every one; None when one
    column does not fit beside column 0."""
    groups, current = [], [0]
    for i in range(1, len(widths)):
        if _table_width([widths[j] for j in current + [i]]) <= width:
            current.append(i)
        elif len(current) > 1:
            groups.append(current)
            current = [0, i]
        else:
            return None
        if _table_width([widths[j] for j in current]) > width:
            return None
    groups.append(current)
    return groups if _table_width([widths[j] for j in groups[0]]) <= width else None


def _records(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """One block per row: its first cell, then `header: value` lines wrapped to `width` at spaces."""
    lines = [title] if title else []
    label = max(len(h) for h in headers[1:]) if len(headers) > 1 else 0
    for r in rows:
        lines.append(r[0])
        for h, c in zip(headers[1:], r[1:]):
            lines += textwrap.wrap(f"{h:<{label}}  {c}", width, initial_indent="  ",
                                   subsequent_indent=" " * (label + 4), break_long_words=False,
                                   break_on_hyphens=False) or [f"  {h}"]
    return lines


def print_columns(title: str, headers: Sequence[str], rows: Sequence[Sequence], *, right: Sequence[bool] | None = None,
                  stream=None, width: int | None = None, terminal: bool | None = None) -> None:
    """Print a table with a header row so that nothing is cut (see the module docstring). `right`
    says which columns are right-aligned (numbers); `width` and `terminal` override what the stream says."""
    stream = stream or sys.stdout
    rows = [[str(c) for c in r] for r in rows]
    right = list(right) if right is not None else [False] * len(headers)
    terminal = is_terminal(stream) if terminal is None else terminal
    if not terminal:
        print("\n".join(plain_lines(title, headers, rows, right)), file=stream, flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    width = width or terminal_width(stream)
    console = Console(file=stream, width=width, force_terminal=True)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    groups = column_groups(widths, width)
    if groups is None:
        console.print("\n".join(_records(title, headers, rows, width)), highlight=False, markup=False, soft_wrap=True)
        return
    for n, group in enumerate(groups):
        t = Table(title=title if n == 0 else None)
        for i in group:
            t.add_column(headers[i], justify="right" if right[i] else "left", no_wrap=True)
        for r in rows:
            t.add_row(*(r[i] for i in group))
        console.print(t)


def print_table(title: str, rows: list[tuple[str, str]], stream=None, width: int | None = None,
                terminal: bool | None = None) -> None:
    """Two columns, a label and its value, without a header row."""
    stream = stream or sys.stdout
    terminal = is_terminal(stream) if terminal is None else terminal
    rows = [(str(k), str(v)) for k, v in rows]
    if not terminal:
        print("\n".join(plain_lines(title, None, rows, [False, True])), file=stream, flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")   # a long path wraps rather than being cut
    for k, v in rows:
        table.add_row(k, v)
    Console(file=stream, width=width or terminal_width(stream), force_terminal=True).print(table)


def print_summary(summary: dict, run_dir: Path | str, stream=None) -> None:
    print_table(f"tunewright run: {run_dir}", summary_rows(summary) + [("run folder", str(run_dir))], stream)
