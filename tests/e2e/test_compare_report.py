"""`tunewright compare` on the tiny config: leaderboard numbers equal each variant's summary.json; the
report is self-contained and, in headless Chromium, loads with no console errors and every figure."""
import csv
import json
import shutil
from pathlib import Path

import pytest

RUN_FIGURES = {"loss", "lr", "grad_norms", "metric_per_epoch", "confusion", "accuracy_vs_params", "baselines",
               "cka", "contribution", "weight_change", "pca", "robustness"}
COMPARE_FIGURES = {"compare_train_loss", "compare_val_accuracy", "compare_train_seconds", "compare_latency_ms_b1",
                   "compare_size_mb"}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """In-process driver (each variant still trains in its own process, as in the CLI)."""
    from tunewright.compare import run_compare

    out = tmp_path_factory.mktemp("cmp")
    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    return run_compare(tiny, [f"output_dir={out}", "train.epochs=2", "train.progress=none"], ["full", "bitfit"],
                       str(out / "cmp"))


def test_leaderboard_matches_each_summary(compared):
    rows = list(csv.DictReader(open(compared / "leaderboard.csv")))
    assert [r["variant"] for r in rows] == ["full", "bitfit"]
    for r in rows:
        s = json.loads((compared / r["variant"] / "summary.json").read_text())
        for split in ("val", "test"):
            for k, v in s[split].items():
                assert float(r[f"{split}_{k}"]) == pytest.approx(v, rel=1e-12), (r["variant"], split, k)
        for k in ("trainable_params", "trainable_share", "train_seconds", "peak_rss_mb"):
            assert float(r[k]) == pytest.approx(s[k], rel=1e-12), (r["variant"], k)
        assert float(r["latency_ms_b1"]) > 0 and float(r["throughput_b32"]) > 0 and float(r["size_mb"]) > 0
    full, bitfit = rows
    assert int(bitfit["trainable_params"]) < int(full["trainable_params"])
    assert float(bitfit["size_mb"]) < float(full["size_mb"])          # bitfit saves biases and head only


def test_report_is_self_contained_with_every_figure(compared):
    html = (compared / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    figures = set(html.split('name="tunewright-figures" content="')[1].split('"')[0].split(","))
    assert RUN_FIGURES | COMPARE_FIGURES <= figures
    # the analysis drawn there: text corruptions at three severities, CKA per layer, PCA of every example
    best = max(csv.DictReader(open(compared / "leaderboard.csv")), key=lambda r: float(r["val_accuracy"]))
    a = json.loads((compared / best["variant"] / "analysis.json").read_text())
    assert set(a["robustness"]) == {"char_noise", "word_dropout"}
    assert all(len(v) == 4 and v[0] == pytest.approx(a["accuracy"]) for v in a["robustness"].values())
    assert len(a["cka"]) > 1 and len(a["pca"]["after"]) == a["examples"]


def test_speed_protocol_is_recorded_once_for_all_variants(compared):
    import torch
    speed = json.loads((compared / "compare.json").read_text())["speed"]
    assert speed["threads"] == torch.get_num_threads() and "median" in speed["batch_1"]


def test_report_in_headless_chromium(compared, tmp_path):
    """The system Chromium, driven by Playwright (no browser download): no console error or page
    error, every figure decoded and laid out, a screenshot saved."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it when run as root: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright drives Chromium (make test installs it)")

    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=browser, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                            "--disable-component-update", "--disable-sync"])
        try:
            page = chromium.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
                    if m.type in ("error", "assert") else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"requestfailed: {r.url} {r.failure}"))
            page.goto((compared / "report.html").resolve().as_uri(), wait_until="load")
            # every <img> has settled (a broken one is `complete` too, with naturalWidth 0) before anything is read
            page.wait_for_function("""() => {
                const imgs = [...document.querySelectorAll('figure[data-figure] img')];
                return imgs.length > 0 && imgs.every(i => i.complete);
            }""", timeout=60_000)
            state = page.evaluate("""() => {
                const imgs = [...document.querySelectorAll('figure[data-figure] img')];
                const meta = document.querySelector('meta[name=tunewright-figures]');
                return {n: imgs.length, url: document.URL,
                        broken: imgs.filter(i => !(i.naturalWidth > 0)).map(i => i.closest('figure').dataset.figure),
                        ok: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length,
                        names: [...document.querySelectorAll('figure[data-figure]')].map(f => f.dataset.figure),
                        listed: meta ? meta.content.split(',') : []};
            }""")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'report.png'} (Chromium {chromium.version})")
        finally:
            chromium.close()
    assert not errors, errors
    assert state["url"].startswith("file:"), state
    assert state["ok"] == state["n"] > 0, state               # every figure decoded and laid out
    assert sorted(state["names"]) == sorted(state["listed"])
    assert RUN_FIGURES | COMPARE_FIGURES <= set(state["names"])
    assert (tmp_path / "report.png").stat().st_size > 10_000
