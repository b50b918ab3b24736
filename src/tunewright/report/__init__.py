"""`tunewright report RUN_DIR|COMPARE_DIR`: one self-contained report.html (images embedded as PNG
data URIs, no scripts, no network), drawn with matplotlib from what the run folder holds.

    runs.py     what a run folder says: metrics rows, test predictions, baselines
    plots.py    one function per figure: data in, base64 PNG out
    html.py     the page: sections, figures, tables
"""
from .html import write_report

__all__ = ["write_report"]
