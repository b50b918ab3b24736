"""`make demo`'s recipe (configs/demo.yaml) on a few documents: its LoRA regex adapts exactly the top three
MiniLM blocks, every long phase reports itself, and the summary names the machine."""
import json


def test_demo_recipe_runs_and_adapts_the_top_three_blocks(tmp_path, run_cli):
    proc = run_cli("demo", f"output_dir={tmp_path}", "data.train_subset=120", "data.test_subset=64",
                   "data.val_fraction=0.1", "train.max_steps=2", "train.progress=plain")
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    # LoRA r=8 on query, key, value, attention output (384x384), intermediate (384->1536) and output
    # (1536->384) of 3 blocks: 3 x 8 x (4 x 768 + 1920 + 1920) = 165,888, plus the head (384 x 8 + 8).
    assert summary["trainable_params"] == 3 * 8 * (4 * 768 + 2 * 1920) + 384 * 8 + 8
    assert summary["sizes"]["test"] == 64
    assert "machine" in proc.stdout and summary["machine"] in proc.stdout
    assert "head warm start" in proc.stderr and "test accuracy" in proc.stdout
