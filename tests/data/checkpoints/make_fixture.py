"""Writes tests/data/checkpoints/format1/: a checkpoint of release 0.1.0 (format 1) that every later
release must keep loading (tests/unit/training/test_checkpoint_compat.py). Run it only to add a fixture
for a NEW format; never overwrite an old one, or the test stops proving anything.

    python tests/data/checkpoints/make_fixture.py tests/data/checkpoints/format1
"""
import json
import sys
from pathlib import Path

import torch
from torch import nn

from tunewright.training.checkpoint import save_checkpoint


def build():
    """The model, optimizer and scheduler the fixture was written from (rebuilt the same way to load it)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def train_steps(model, opt, sched, steps: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 4, generator=g), torch.randint(0, 2, (8,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


if __name__ == "__main__":
    out = Path(sys.argv[1])
    model, opt, sched = build()
    train_steps(model, opt, sched, 4)
    path = save_checkpoint(out, 4, model=model, optimizer=opt, scheduler=sched, keep_last=1,
                           trainer_state={"loop": {"step": 4, "epoch": 1, "batch_in_epoch": 0}})
    # What a later release must read back, independently of the checkpoint code.
    expected = {k: v.tolist() for k, v in model.state_dict().items()}
    expected["lr"] = opt.param_groups[0]["lr"]
    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    print(f"written: {path}")
