"""`tunewright compare` on the tiny config: leaderboard numbers equal each variant's summary.json; the
report is self-contained and, in headless Chromium, loads with no console errors and every figure."""
import base64
import csv
import json
import shutil
import socket
import subprocess
import tempfile
import time
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_report_in_headless_chromium(compared, tmp_path):
    """Chromium over the DevTools protocol: console errors, figures decoded, a screenshot."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it when run as root: apt-get install chromium)")
    websocket = pytest.importorskip("websocket", reason="websocket-client is needed to speak DevTools")
    import urllib.request

    port = _free_port()
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                             "--window-size=1200,900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = None
        for _ in range(120):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=1))
                if any(t["type"] == "page" for t in targets):
                    break
            except OSError:
                time.sleep(0.5)
        assert targets, "chromium's DevTools endpoint did not come up"
        page = next(t for t in targets if t["type"] == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        ids, errors = iter(range(1, 10_000)), []

        def call(method, **params):
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == i:
                    return msg.get("result", {})
                m = msg.get("method")
                if m == "Runtime.consoleAPICalled" and msg["params"]["type"] in ("error", "assert"):
                    errors.append(msg["params"])
                elif m == "Runtime.exceptionThrown":
                    errors.append(msg["params"])
                elif m == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error":
                    errors.append(msg["params"]["entry"])

        for domain in ("Runtime", "Log", "Page"):
            call(f"{domain}.enable")
        call("Page.navigate", url=(compared / "report.html").resolve().as_uri())
        state = {}
        for _ in range(120):
            res = call("Runtime.evaluate", returnByValue=True, expression="""(() => {
                const imgs = [...document.querySelectorAll('figure[data-figure] img')];
                const meta = document.querySelector('meta[name=tunewright-figures]');
                return {ready: document.readyState, n: imgs.length, url: document.URL,
                        ok: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
                        names: [...document.querySelectorAll('figure[data-figure]')].map(f => f.dataset.figure),
                        listed: meta ? meta.content.split(',') : []};
            })()""")
            state = res.get("result", {}).get("value") or {}      # empty while the navigation is under way
            if (state.get("url", "").startswith("file:") and state["ready"] == "complete"
                    and state["n"] and state["ok"] == state["n"]):
                break
            time.sleep(0.25)
        shot = call("Page.captureScreenshot", format="png")["data"]
        (tmp_path / "report.png").write_bytes(base64.b64decode(shot))
        print(f"screenshot: {tmp_path / 'report.png'}")
        ws.close()
        assert not errors, errors
        assert state.get("url", "").startswith("file:"), state
        assert state["ok"] == state["n"] > 0, state               # every figure decoded and laid out
        assert sorted(state["names"]) == sorted(state["listed"])
        assert RUN_FIGURES | COMPARE_FIGURES <= set(state["names"])
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
