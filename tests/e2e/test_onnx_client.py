"""A real client that is not tunewright: a fresh virtual environment with only onnxruntime, tokenizers and numpy
(no torch, no tunewright) runs examples/onnx_client.py on an exported run and gets the labels `tunewright predict`
gives on texts the run never saw. Needs PyPI (or a pip cache / index configured for pip)."""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNSEEN = ["the goalkeeper saved a late penalty", "the central bank raised interest rates again",
          "a cold front brings thunderstorms tonight", "investors sold shares after weak earnings",
          "the coach praised the defence after the derby", "fog and drizzle will linger until noon"]

pytestmark = pytest.mark.slow


def test_torch_free_client_matches_tunewright_predict(tmp_path, tiny_args, run_cli):
    run_cli("train", *tiny_args)
    run_dir = tmp_path / "runs" / "tiny"
    run_cli("export", run_dir, "--output", tmp_path / "export", "--no-eval")
    # The client's interpreter must not see this process's Python path (a library may have set PYTHONPATH
    # in os.environ, as Ray does for its workers), or torch would be found there.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    env_dir = tmp_path / "client-venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "onnxruntime", "tokenizers", "numpy"],
                         capture_output=True, text=True, timeout=600, env=env)
    if pip.returncode != 0:
        pytest.skip(f"cannot install the client's packages here: {pip.stderr[-300:]}")
    isolated = subprocess.run([py, "-c", "import importlib.util as u; print(u.find_spec('torch'), "
                               "u.find_spec('tunewright'))"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert isolated.stdout.split() == ["None", "None"]          # really torch-free

    client = subprocess.run([py, str(REPO / "examples" / "onnx_client.py"), str(tmp_path / "export"), *UNSEEN],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert client.returncode == 0, client.stderr
    got = [json.loads(line)["label"] for line in client.stdout.splitlines()]

    csv = tmp_path / "unseen.csv"
    csv.write_text("text\n" + "\n".join(UNSEEN) + "\n")
    run_cli("predict", run_dir, csv, "--output", tmp_path / "pred.jsonl")
    want = [json.loads(line)["label"] for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert got == want and len(got) == len(UNSEEN)
    assert len(set(want)) > 1                                   # a constant answer would prove nothing
