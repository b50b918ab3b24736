"""Loss-spike rollback through `tunewright.run.train` on configs/tiny.yaml: the option reaches the run
from the config, the rollback is logged to metrics.jsonl and printed, checkpoints carry it, and a
`--resume` from a checkpoint after it finishes exactly like the uninterrupted run."""
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file

from tunewright.run import train

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
# 60 rows / batch 8 = 8 steps per epoch, 64 in all; checkpoints every 4 steps.
ARGS = ["train.progress=none", "checkpoint.every_steps=4", "checkpoint.keep_last=20", "train.spike_factor=20",
        "train.spike_window=5"]


class SpikeAt:
    """Multiplies the loss of the step taken when state.step == `at` by 1000, once."""

    def __init__(self, at):
        self.at, self.done = at, False

    def on_loss(self, ctx, loss, batch):
        if ctx.state.step == self.at and not self.done:
            self.done = True
            return loss * 1000.0
        return None


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_loss_spike_rolls_the_run_back_is_logged_and_resumes_exactly(tmp_path, capsys):
    result = train(TINY, [f"output_dir={tmp_path / 'a'}", *ARGS], callbacks=[SpikeAt(13)])
    run_dir = result.run_dir
    events = [r for r in _rows(run_dir) if "event" in r]
    assert [(r["event"], r["step"], r["to_step"], r["rollback"]) for r in events] == [("rollback", 14, 12, 1)]
    assert events[0]["loss"] > 20 * events[0]["median"]
    assert events[0]["lr"] < 0.003 * 0.5                     # the schedule's value at step 12, halved
    assert "loss spike at step 14" in capsys.readouterr().err
    assert result.summary["steps"] == 64
    last = json.loads((run_dir / "checkpoints" / "step-000064" / "state.json").read_text())
    assert last["trainer_state"]["callbacks"]["LossSpikeRollback"]["rollbacks"] == 1

    # Killed after step 20 (its checkpoint is copied into a fresh folder), then --resume: the same end.
    cut = tmp_path / "b" / run_dir.name
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copytree(run_dir / "checkpoints" / "step-000020", cut / "checkpoints" / "step-000020")
    shutil.copy(run_dir / "metrics.jsonl", cut / "metrics.jsonl")
    resumed = train(TINY, [f"output_dir={tmp_path / 'b'}", *ARGS], resume=True)
    a = load_file(str(run_dir / "checkpoints" / "step-000064" / "model.safetensors"))
    b = load_file(str(cut / "checkpoints" / "step-000064" / "model.safetensors"))
    assert all(a[k].equal(b[k]) for k in a)
    assert resumed.summary["test"] == result.summary["test"]
