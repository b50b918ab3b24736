"""The continual and multi-task drivers resume exactly: SIGKILL a run in the middle of a later phase
(after one phase has finished and a checkpoint inside the current one exists), resume, and get the
same results and the same metrics.jsonl as a run that was never stopped."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# argv: driver (continual:<method> | multitask), run folder, optimizer step to die after (0: never), resume
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import torch
    from tunewright.config.load import config_from_dict
    from tunewright.data.examples import Examples
    from tunewright.tracking.phases import PhasedLog
    from tunewright.training.phased import PhaseCheckpoints

    driver, run_dir, kill_at, resume = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    g = torch.Generator().manual_seed(0)
    cfg = config_from_dict({"train": {"epochs": 1, "batch_size": 8, "lr": 1e-2, "seed": 0, "progress": "none",
                                      "log_every_steps": 1},
                            "checkpoint": {"every_steps": 2, "keep_last": 2},
                            "continual": {"benchmark": "text", "fisher_batches": 2, "buffer_size": 16,
                                          "replay_batch": 4}})
    if driver.startswith("continual"):
        import tunewright.continual.driver as mod
        tasks, classes = [], []
        for t in range(3):                      # 40 training rows: 5 steps per task
            x = torch.randn(60, 8, generator=g)
            y = x[:, :2].argmax(1) + 2 * t
            tasks.append((Examples(inputs=x[:40], labels=y[:40], task=torch.full((40,), t)),
                          Examples(inputs=x[40:], labels=y[40:], task=torch.full((20,), t))))
            classes.append([2 * t, 2 * t + 1])
        run = lambda log, phases: mod.run_sequence(cfg, driver.split(":")[1], (tasks, classes, 6), log, phases)
    else:
        import tunewright.multitask.driver as mod
        data = []
        for t, k in enumerate((2, 3)):          # 40 rows per task: the joint run 10 steps, each alone 5
            x = torch.randn(60, 8, generator=g)
            y = x[:, :k].argmax(1)
            data.append((f"task{t}", Examples(inputs=x[:40], labels=y[:40], task=torch.full((40,), t)),
                         Examples(inputs=x[40:], labels=y[40:], task=torch.full((20,), t)), k))
        run = lambda log, phases: {"rows": mod.negative_transfer(cfg, data, log, phases)}
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
""")


def _run(*args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)


def _clean(obj):
    """Wall-clock figures out; everything else must match exactly."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in ("seconds", "samples_per_s", "time", "elapsed_s")}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


# continual: tasks of 5 steps. Step 11 is task 2's first step, before its first checkpoint: the resume
# starts from the task-1 boundary alone (EWC's anchors come back from it). Step 13 is after task 2's
# step-2 checkpoint (the replay buffer comes back from it). multitask: the joint run is 10 steps, so
# step 13 is inside phase 1 (task0 alone) after its step-2 checkpoint.
@pytest.mark.parametrize("driver,kill_at,phase,mid", [("continual:ewc", 11, 2, False),
                                                      ("continual:replay", 13, 2, True), ("multitask", 13, 1, True)])
def test_sigkill_mid_phase_then_resume_is_exact(tmp_path, driver, kill_at, phase, mid):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    done = _run(driver, ref, 0, 0)
    assert done.returncode == 0, done.stderr
    killed = _run(driver, cut, kill_at, 0)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (cut / "summary.json").exists()
    assert (cut / "checkpoints" / f"after-phase-{phase - 1}").is_dir()
    assert any((cut / "checkpoints" / f"phase-{phase}").glob("step-*")) == mid
    resumed = _run(driver, cut, 0, 1)
    assert resumed.returncode == 0, resumed.stderr

    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    assert _clean(a) == _clean(b)
    rows = lambda d: _clean([json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()])
    assert rows(ref) == rows(cut)
    assert [r["step"] for r in rows(cut) if r.get("split") == "train"] == \
        sorted({r["step"] for r in rows(cut) if r.get("split") == "train"})   # no step twice, none missing
