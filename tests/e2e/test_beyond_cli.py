"""`tunewright continual` as a user runs it: the run folder holds what `tunewright train`'s does
(config.yaml, metrics.jsonl rows per task, summary.json), and the adapters method forgets nothing."""
import json
from pathlib import Path

import pytest

from tunewright.assets.datasets import get_dataset

REPO = Path(__file__).resolve().parents[2]


def test_continual_cli_writes_metrics_and_adapters_do_not_forget(tmp_path, run_cli):
    fashion = get_dataset("fashion-mnist")
    if not fashion.is_installed():      # `make test` installs it when run as root; elsewhere this test skips
        pytest.skip(f"{fashion.package} is not installed ({fashion.install})")
    run_cli("continual", REPO / "configs" / "continual_split_fashion.yaml", "continual.method=adapters",
            "continual.train_per_task=40", "continual.test_per_task=20", "train.epochs=1", "train.batch_size=20",
            "train.progress=none", "train.log_every_steps=1", f"output_dir={tmp_path}", "run_name=cl")
    run = tmp_path / "cl"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert [r["phase"] for r in train] == [f"adapters task {t}" for t in range(5) for _ in range(2)]
    assert [r["step"] for r in train] == list(range(1, 11))
    R = json.loads((run / "summary.json").read_text())["R"]
    assert all(R[i][j] == R[j][j] for j in range(5) for i in range(j, 5)), R    # BWT exactly 0
    assert (run / "config.yaml").is_file()


def test_continual_cli_trains_a_live_text_backbone(tmp_path, run_cli):
    # The live-text recipe on tiny-bert with replay: token rows go through the buffer and into the phase
    # checkpoints (the model, the buffer, R) that --resume would read.
    run_cli("continual", REPO / "configs" / "continual_text_lora.yaml", "model.name=tiny-bert",
            "continual.method=replay", "continual.train_per_task=16", "continual.test_per_task=8",
            "data.max_length=16", "train.batch_size=8", "train.progress=none", "train.log_every_steps=1",
            f"output_dir={tmp_path}", "run_name=a")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert len(summary["R"]) == 3 and all(len(r) == 3 for r in summary["R"])
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows if r["split"] == "train"} == {f"replay task {t}" for t in range(3)}
    saved = [p.parent.name for p in (tmp_path / "a" / "checkpoints").rglob("step-*")]
    assert "after-phase-2" in saved, saved                                     # the newest one is kept
