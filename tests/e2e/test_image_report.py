"""report.html for an image run: the worst failures are shown as images, and the analysis corrupts
images (Gaussian noise, blur, contrast) at three severities. A small CNN on 300 sklearn digits."""
import json

import pytest


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from tunewright import train
    from tunewright.report import write_report

    out = tmp_path_factory.mktemp("img")
    res = train({"run_name": "img", "task": "image_classification", "output_dir": str(out),
                 "model": {"name": "tunewright.zoo:small_cnn",
                           "factory_kwargs": {"in_channels": 3, "width": 4, "image_size": 16, "feature_dim": 16}},
                 "data": {"train": "digits", "image_size": 16, "train_subset": 300, "test_subset": 120},
                 "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "log_every_steps": 2, "progress": "none"}})
    return res.run_dir, write_report(res.run_dir, max_examples=64)


def test_image_report_has_every_figure_and_failure_images(image_run):
    run_dir, report = image_run
    html = report.read_text()
    figures = set(html.split('name="tunewright-figures" content="')[1].split('"')[0].split(","))
    assert {"loss", "lr", "grad_norms", "metric_per_epoch", "confusion", "failure_images", "accuracy_vs_params",
            "baselines", "cka", "contribution", "weight_change", "pca", "robustness"} <= figures
    assert html.count('data-figure="failure_images"') == 1 and "http://" not in html and "<script" not in html


def test_image_analysis_corrupts_at_three_severities(image_run):
    run_dir, _ = image_run
    a = json.loads((run_dir / "analysis.json").read_text())
    assert set(a["robustness"]) == {"gaussian_noise", "blur", "contrast"}
    for kind, accs in a["robustness"].items():
        assert len(accs) == 4 and all(0 <= v <= 1 for v in accs), kind       # clean + severities 1..3
        assert accs[0] == pytest.approx(a["accuracy"])
    assert len(a["pca"]["before"]) == len(a["pca"]["after"]) == len(a["pca"]["labels"]) == a["examples"]
    assert all(0 <= v <= 1 + 1e-9 for v in a["cka"].values())
