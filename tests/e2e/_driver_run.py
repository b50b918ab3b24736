"""One continual or multi-task run on small synthetic tasks, for test_drivers_resume.py: in a process of
its own when it is to be killed (`python _driver_run.py DRIVER RUN_DIR KILL_AT RESUME`), else imported.

DRIVER is continual:<method> or multitask; KILL_AT the optimizer step (counted over the whole run) after
which the process SIGKILLs itself, 0 for never."""
import os
import signal
import sys
from pathlib import Path

import torch

from tunewright.config.load import config_from_dict
from tunewright.data.examples import Examples
from tunewright.tracking.phases import PhasedLog
from tunewright.training.phased import PhaseCheckpoints


def _tasks(g, sizes):
    out = []
    for t, k in enumerate(sizes):               # 40 training rows, 20 test rows each
        x = torch.randn(60, 8, generator=g)
        y = x[:, :k].argmax(1)
        out.append((x, y, t))
    return out


def main(driver: str, run_dir, kill_at: int = 0, resume: bool = False) -> None:
    run_dir = Path(run_dir)
    g = torch.Generator().manual_seed(0)
    cfg = config_from_dict({"train": {"epochs": 1, "batch_size": 8, "lr": 1e-2, "seed": 0, "progress": "none",
                                      "log_every_steps": 1},
                            "checkpoint": {"every_steps": 2, "keep_last": 2},
                            "continual": {"benchmark": "text", "fisher_batches": 2, "buffer_size": 16,
                                          "replay_batch": 4}})
    if driver.startswith("continual"):
        import tunewright.continual.driver as mod
        tasks, classes = [], []
        for x, y, t in _tasks(g, (2, 2, 2)):    # 5 steps per task
            y = y + 2 * t
            tasks.append((Examples(inputs=x[:40], labels=y[:40], task=torch.full((40,), t)),
                          Examples(inputs=x[40:], labels=y[40:], task=torch.full((20,), t))))
            classes.append([2 * t, 2 * t + 1])

        def run(log, phases):
            return mod.run_sequence(cfg, driver.split(":")[1], (tasks, classes, 6), log, phases)
    else:
        import tunewright.multitask.driver as mod
        data = [(f"task{t}", Examples(inputs=x[:40], labels=y[:40], task=torch.full((40,), t)),
                 Examples(inputs=x[40:], labels=y[40:], task=torch.full((20,), t)), k)
                for (x, y, t), k in zip(_tasks(g, (2, 3)), (2, 3))]   # the joint run 10 steps, each alone 5

        def run(log, phases):
            return {"rows": mod.negative_transfer(cfg, data, log, phases)}
    if kill_at:
        count = [0]

        class KillAt:
            def on_step_end(self, ctx):
                count[0] += 1
                if count[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

        original = mod.fit_examples
        mod.fit_examples = lambda *a, callbacks=(), **k: original(*a, callbacks=[*callbacks, KillAt()], **k)
    phases = PhaseCheckpoints(run_dir / "checkpoints", resume)
    with PhasedLog(cfg, run_dir, resume_step=phases.resume_step) as log:
        out = run(log, phases)
        log.close(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
