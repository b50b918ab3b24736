"""Exact resume: SIGKILL a training process mid-epoch, resume, and compare weights bit for bit."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from safetensors.torch import load_file


# Kill the process for real (SIGKILL: no cleanup, no atexit) right after optimizer step 13.
# 60 rows / batch 8 = 8 steps per epoch, so step 13 is in the middle of epoch 2, and the newest
# checkpoint (every 4 steps) is step 12: the resumed run must replay the rest of epoch 2 exactly.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from tunewright.run import train

    class KillAt:
        def on_step_end(self, ctx):
            if ctx.state.step == 13:
                os.kill(os.getpid(), signal.SIGKILL)

    train(sys.argv[1], sys.argv[2:], callbacks=[KillAt()])
""")


def _final_weights(run_dir):
    ckpts = sorted((run_dir / "checkpoints").glob("step-*"))
    return ckpts[-1].name, load_file(str(ckpts[-1] / "model.safetensors"))


def _rows(run_dir):
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    drop = {"samples_per_s"}  # wall-clock dependent
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, run_cli):
    cli = run_cli
    common = ["checkpoint.every_steps=4", "checkpoint.keep_last=2", "train.progress=plain"]
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    cli("train", TINY, f"output_dir={ref_dir}", *common)

    killed = subprocess.run([sys.executable, "-c", KILLER, str(TINY), f"output_dir={cut_dir}", *common],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_cut = cut_dir / "tiny"
    assert not (run_cut / "summary.json").exists()
    assert (run_cut / "checkpoints" / "step-000012").is_dir()

    resumed = cli("train", TINY, f"output_dir={cut_dir}", *common, "--resume")
    assert "resumed from" in resumed.stdout and "step 12" in resumed.stdout

    name_ref, w_ref = _final_weights(ref_dir / "tiny")
    name_cut, w_cut = _final_weights(run_cut)
    assert name_ref == name_cut
    assert w_ref.keys() == w_cut.keys()
    for k in w_ref:
        assert w_ref[k].equal(w_cut[k]), k
    best_ref = load_file(str(ref_dir / "tiny" / "model" / "model.safetensors"))
    best_cut = load_file(str(run_cut / "model" / "model.safetensors"))
    assert all(best_ref[k].equal(best_cut[k]) for k in best_ref)
    # metrics.jsonl reads as one uninterrupted run (rows after the checkpoint were dropped, then replayed)
    assert _rows(ref_dir / "tiny") == _rows(run_cut)
    s_ref = json.loads((ref_dir / "tiny" / "summary.json").read_text())
    s_cut = json.loads((run_cut / "summary.json").read_text())
    assert s_ref["test"] == s_cut["test"] and s_ref["best_step"] == s_cut["best_step"]


def test_truncated_newest_checkpoint_is_skipped_with_a_message(tmp_path, run_cli):
    cli = run_cli
    out = tmp_path / "runs"
    cli("train", TINY, f"output_dir={out}", "checkpoint.every_steps=8", "checkpoint.keep_last=3",
        "train.max_steps=24", "train.progress=plain")
    run = out / "tiny"
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    f = newest / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    proc = cli("train", TINY, f"output_dir={out}", "checkpoint.every_steps=8", "checkpoint.keep_last=3",
               "train.max_steps=24", "train.progress=plain", "--resume")
    text = proc.stdout + proc.stderr
    assert newest.name in text and "model.safetensors" in text
    assert "resumed from" in text and "step-000016" in text
