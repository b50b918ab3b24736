"""Two runs writing one run folder at once: the second is refused and names the first; a killed run
leaves no stuck lock."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tunewright.errors import TunewrightError
from tunewright.run_lock import RunLock

REPO = Path(__file__).resolve().parents[3]
HOLD = ("import sys, time; from tunewright.run_lock import RunLock; "
        "lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)")


def _holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_is_refused_naming_the_first(tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    holder = _holder(run_dir)
    try:
        import tunewright
        with pytest.raises(TunewrightError, match=rf"in use by process {holder.pid} on "):
            tunewright.train(str(REPO / "configs" / "tiny.yaml"), [f"output_dir={run_dir.parent}", "run_name=tiny",
                                                                    "train.progress=none"])
        assert not run_dir.exists()                      # refused before anything was written
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    holder = _holder(run_dir)
    with pytest.raises(TunewrightError):
        RunLock(run_dir).acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(run_dir) as lock:                       # the kernel dropped the dead process's lock
        assert f'"pid": {os.getpid()}' in lock.path.read_text()
    with RunLock(run_dir):                               # and a released one can be taken again
        pass


def test_two_runs_in_one_process_release_in_turn(tmp_path):
    a = RunLock(tmp_path / "x").acquire()
    a.release()
    RunLock(tmp_path / "x").acquire().release()
