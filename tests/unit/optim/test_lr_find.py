"""The LR finder: its suggestion lies inside the swept range, the plot is written, and the model and
optimizer are left as they were. lr-plot writes every param group's schedule."""
import json
from pathlib import Path

import pytest
import torch

from tunewright.cli.main import main
from tunewright.optim.lr_find import lr_find, suggest

TINY = Path(__file__).resolve().parents[3] / "configs" / "tiny.yaml"


def test_suggest_is_the_steepest_descent():
    lrs = [10 ** (-6 + i * 0.1) for i in range(50)]
    losses = [2.0] * 20 + [2.0 - 0.1 * i for i in range(1, 16)] + [0.5] * 15
    losses[27] -= 0.3                                          # the steepest drop
    assert suggest(lrs, losses, skip_begin=5) == pytest.approx(lrs[27], rel=0.3)


class Forward(torch.nn.Module):
    """A batch dict -> logits module around a plain layer."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        return self.inner(batch["inputs"])


def test_lr_find_restores_model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))

    def batches():
        while True:
            yield {"inputs": x, "labels": y}

    res = lr_find(Forward(model), opt, batches(),
                  lambda logits, b: torch.nn.functional.cross_entropy(logits, b["labels"]), start=1e-5, end=10, num=40)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.state_dict()["state"] == {} and opt.param_groups[0]["lr"] == 1e-3
    assert res.lrs[0] == pytest.approx(1e-5) and res.lrs[0] <= res.suggestion <= res.lrs[-1]


def test_cli_lr_find_suggestion_inside_range_and_plot(tmp_path, capsys):
    out = tmp_path / "lr.png"
    assert main(["lr-find", str(TINY), f"output_dir={tmp_path}", "--steps", "40", "--start", "1e-6", "--end", "1",
                 "--out", str(out)]) == 0
    found = json.loads(out.with_suffix(".json").read_text())
    assert out.stat().st_size > 10_000
    assert 1e-6 <= found["lrs"][0] <= found["suggestion"] <= found["lrs"][-1] <= 1.0
    assert "suggested lr" in capsys.readouterr().out


def test_cli_lr_plot_draws_every_group(tmp_path):
    out = tmp_path / "sched.png"
    assert main(["lr-plot", str(TINY), f"output_dir={tmp_path}", "strategy=gradual_unfreezing",
                 "strategy_options.layer_lr=ulmfit", "train.schedule=slanted_triangular", "--out", str(out)]) == 0
    plotted = json.loads(out.with_suffix(".json").read_text())
    assert out.stat().st_size > 10_000
    assert [g["name"] for g in plotted["groups"]] == ["embeddings", "block.0", "block.1", "head"]
    assert plotted["unfreeze_step"] == {"head": 0, "block.1": 8, "block.0": 16, "embeddings": 24}
    head = plotted["groups"][-1]
    assert max(head["lr"]) == pytest.approx(head["peak_lr"]) and len(head["lr"]) == plotted["total_steps"]
