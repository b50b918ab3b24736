"""The continual and multi-task drivers resume exactly: SIGKILL a run in the middle of a later phase
(after one phase has finished and a checkpoint inside the current one exists), resume, and get the
same results and the same metrics.jsonl as a run that was never stopped."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HELPER = Path(__file__).with_name("_driver_run.py")


def _run(*args):
    """The run that is killed: its own process (SIGKILL takes no cleanup with it)."""
    return subprocess.run([sys.executable, str(HELPER), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)


def _in_process(*args):
    """The reference and the resumed run, here: a process start costs more than either."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_driver_run", HELPER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(*args)


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
    _in_process(driver, ref, 0, False)
    killed = _run(driver, cut, kill_at, 0)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (cut / "summary.json").exists()
    assert (cut / "checkpoints" / f"after-phase-{phase - 1}").is_dir()
    assert any((cut / "checkpoints" / f"phase-{phase}").glob("step-*")) == mid
    _in_process(driver, cut, 0, True)

    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    assert _clean(a) == _clean(b)
    rows = lambda d: _clean([json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()])
    assert rows(ref) == rows(cut)
    assert [r["step"] for r in rows(cut) if r.get("split") == "train"] == \
        sorted({r["step"] for r in rows(cut) if r.get("split") == "train"})   # no step twice, none missing
