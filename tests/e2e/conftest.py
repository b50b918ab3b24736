import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"


def cli(*args, cwd=REPO, check=True, env=None):
    """Run the real `tunewright` console entry in a subprocess (as a user would)."""
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "tunewright.cli.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=e, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def run_cli():
    return cli


@pytest.fixture
def tiny_config():
    return TINY


@pytest.fixture
def tiny_args(tmp_path):
    """configs/tiny.yaml with output under tmp_path and quiet progress."""
    return [TINY, f"output_dir={tmp_path / 'runs'}", "train.progress=plain"]
