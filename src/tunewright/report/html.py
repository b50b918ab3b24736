"""The report page. Self-contained on purpose: PNGs as data URIs, inline CSS, no scripts, so it opens
from a mail attachment or an air-gapped machine the same way. Every figure is a
`<figure data-figure="NAME">`; the names present are listed in `<meta name="tunewright-figures">` so
a test (or a user) can check none is missing.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from . import plots
from .runs import predictions, read_leaderboard, read_rows

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.5em}img{max-width:100%}
.note{color:#777;font-size:.85em}.input{text-align:left;max-width:520px;font-size:.8em}"""


class Page:
    def __init__(self, title: str):
        self.title, self.parts, self.figures = title, [], []

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, name: str, b64: str | None, caption: str) -> None:
        if b64 is None:
            self.note(f"{caption}: no data for this figure.")
            return
        self.figures.append(name)
        self.parts.append(f'<figure data-figure="{name}"><img alt="{html.escape(caption)}" '
                          f'src="data:image/png;base64,{b64}"><figcaption class="note">{html.escape(caption)}'
                          f'</figcaption></figure>')

    def table(self, rows: list[dict], cols: list[str] | None = None, cls: dict | None = None) -> None:
        if not rows:
            return
        cols = cols or list(dict.fromkeys(k for r in rows for k in r))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f'<td class="{(cls or {}).get(c, "")}">{html.escape(_fmt(r.get(c)))}</td>'
                                         for c in cols) + "</tr>" for r in rows)
        self.parts.append(f'<div style="overflow-x:auto"><table><tr>{head}</tr>{body}</table></div>')

    def render(self) -> str:
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f'<meta name="tunewright-figures" content="{",".join(self.figures)}"><style>{CSS}</style></head>'
                f'<body><h1>{html.escape(self.title)}</h1>{"".join(self.parts)}</body></html>')


def _fmt(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 100:
        v = int(v)                                              # counts read back from the CSV as floats
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def run_sections(page: Page, run_dir: Path, points: list[dict] | None, analyze: bool, baselines: bool,
                 max_examples: int = 256) -> None:
    """Training curves, errors, baselines and analysis of one run folder."""
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = read_rows(run_dir)
    page.h2(f"Run {run_dir.name}")
    page.table([{"split": s, **{k: v for k, v in summary[s].items() if isinstance(v, (int, float))}}
                for s in ("val", "test") if summary.get(s)])
    page.table([{k: summary.get(k) for k in ("trainable_params", "total_params", "trainable_share", "train_seconds",
                                             "peak_rss_mb", "best_epoch", "steps")}])
    page.h2("Training")
    page.figure("loss", plots.loss_curves(rows), "train loss (training mode: dropout on, the mean over each "
                "logging window) and val loss (eval mode), and the gap between them")
    page.figure("lr", plots.lr_curves(rows), "learning rate of each param group")
    page.figure("grad_norms", plots.grad_norms(rows), "gradient norms, global and per layer group")
    page.figure("metric_per_epoch", plots.metric_per_epoch(rows), "validation metric per evaluation")
    pred = predictions(run_dir, baselines=baselines)
    if pred:
        page.h2("Errors")
        page.figure("confusion", plots.confusion(pred["confusion"], pred["label_names"]), "confusion matrix on test")
        page.note("The most confident wrong predictions on test, with their inputs:")
        page.table(pred["failures"], ["confidence", "true", "predicted", "source", "input"], {"input": "input"})
        if pred.get("failure_images"):
            page.figure("failure_images", plots.image_grid(pred["failure_images"], "true → predicted (confidence)"),
                        "the most confident wrong predictions: the images")
        page.h2("Is it worth it?")
        pts = points or [{"variant": run_dir.name, "trainable_params": summary["trainable_params"],
                          "test_accuracy": pred["accuracy"]}]
        page.figure("accuracy_vs_params", plots.accuracy_vs_params(pts), "accuracy against trainable parameters")
        if "baselines" in pred:
            scores = {f"{p['variant']}": p["test_accuracy"] for p in pts if p.get("test_accuracy") is not None}
            scores.update({"baseline: majority class": pred["baselines"]["majority_class"],
                           "baseline: linear probe (pretrained features)": pred["baselines"]["linear_probe"]})
            page.figure("baselines", plots.baselines(scores), "test accuracy against the baselines")
    analysis_sections(page, run_dir, analyze, max_examples)


def analysis_sections(page: Page, run_dir: Path, analyze: bool, max_examples: int = 256) -> None:
    path = run_dir / "analysis.json"
    if not path.exists() and analyze:
        from ..analysis.analyze import analyze_run
        try:
            analyze_run(run_dir, max_examples)
        except NotImplementedError as e:
            page.note(f"analysis skipped: {e}")
    if not path.exists():
        return
    a = json.loads(path.read_text())
    page.h2("What fine-tuning changed (tunewright analyze)")
    for n in a.get("notes", []):
        page.note(n)
    page.figure("cka", plots.bars(a.get("cka", {}), "linear CKA before vs after, per layer (1: unchanged)", "CKA"),
                "representation similarity per layer")
    page.figure("contribution", plots.bars(a.get("contribution", {}), "accuracy drop when the group reverts to "
                                           "pretrained", "accuracy drop"), "layer contribution")
    page.figure("weight_change", plots.bars(a.get("weight_change", {}), "relative weight change ||ΔW|| / ||W||",
                                            "||ΔW|| / ||W||"), "relative weight change per layer group")
    if a.get("lora"):
        page.figure("lora_spectrum", plots.lora_spectra(a["lora"]), "singular values and effective rank of the updates")
    page.figure("pca", plots.pca(a.get("pca")), "features before and after, PCA, coloured by class")
    page.figure("robustness", plots.robustness(a.get("robustness")), "metric under input corruptions")


def compare_sections(page: Page, compare_dir: Path, analyze: bool, baselines: bool, max_examples: int = 256) -> None:
    lb = read_leaderboard(compare_dir / "leaderboard.csv")
    page.h2("Leaderboard")
    page.table(sorted(lb, key=lambda r: -(r.get("test_accuracy") or 0)))
    runs = {r["variant"]: read_rows(compare_dir / r["variant"]) for r in lb}
    page.figure("compare_train_loss", plots.overlay(runs, "train", "loss", "train loss"),
                "train loss per variant (training mode: dropout on; the mean over each logging window)")
    page.figure("compare_val_accuracy", plots.overlay(runs, "val", "accuracy", "val accuracy"), "val accuracy per variant")
    for key, label in (("train_seconds", "train time (s)"), ("latency_ms_b1", "ms per sample at batch 1"),
                       ("size_mb", "saved weights (MB)")):
        page.figure(f"compare_{key}", plots.bars({r["variant"]: r[key] for r in lb if r.get(key) is not None},
                                                 label, label), label)
    best = max(lb, key=lambda r: r.get("val_accuracy") or 0)["variant"]
    page.note(f"The sections below are for the variant with the best validation accuracy: {best}.")
    run_sections(page, compare_dir / best, lb, analyze, baselines, max_examples)


def write_report(path, analyze: bool = True, baselines: bool = True, max_examples: int = 256) -> Path:
    """report.html for a run folder or a compare folder (the one holding leaderboard.csv)."""
    path = Path(path)
    if (path / "leaderboard.csv").exists():
        page = Page(f"tunewright compare: {path.name}")
        compare_sections(page, path, analyze, baselines, max_examples)
    elif (path / "summary.json").exists():
        page = Page(f"tunewright report: {path.name}")
        lb_path = path.parent / "leaderboard.csv"
        points = None
        if lb_path.exists():
            points = read_leaderboard(lb_path)
        run_sections(page, path, points, analyze, baselines, max_examples)
    else:
        from ..errors import TunewrightError
        raise TunewrightError(f"{path} is neither a run folder (summary.json) nor a compare folder (leaderboard.csv).")
    out = path / "report.html"
    out.write_text(page.render())
    from ..tracking import log_report
    log_report(path, out)        # MLflow, TensorBoard and W&B records of the run, where it has them
    return out
