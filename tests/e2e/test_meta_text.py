"""Meta-learning on text from the command line: meta-train on a text/label file (frozen tiny-bert
features, a trainable trunk), SIGKILL mid-run and resume bit-identically, adapt to another text file,
and bad text data fail before any model loads."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
WORDS = ["oil", "wheat", "gold", "ship", "trade", "bank", "coffee", "sugar", "steel", "cotton"]

# Kill the process for real (no cleanup) right after meta-update 7; checkpoints every 4 updates, so
# the resumed run continues from step 4 and must replay updates 5-12 exactly.
KILLER = textwrap.dedent("""
    import os, signal, sys
    import tunewright.meta.driver as driver
    from tunewright.cli.main import main

    class KillAt:
        def on_step_end(self, ctx):
            if ctx.state.step == 7:
                os.kill(os.getpid(), signal.SIGKILL)

    original = driver.fit_examples
    driver.fit_examples = lambda *a, callbacks=(), **k: original(*a, callbacks=[*callbacks, KillAt()], **k)
    sys.exit(main(sys.argv[1:]))
""")


def _write_topics(path: Path, classes: list[str], per_class: int, seed: int) -> None:
    """A text,label CSV: each topic's documents repeat its own word among shared filler words."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for c, word in enumerate(classes):
        for _ in range(per_class):
            words = [word] * 3 + rng.sample(["market", "price", "said", "year", "pct", "week", "rise"], 4)
            rng.shuffle(words)
            lines.append(f"{' '.join(words)},topic-{word}")
    path.write_text("\n".join(lines) + "\n")


def _config(tmp_path: Path, data: Path) -> Path:
    cfg = tmp_path / "meta_text.yaml"
    cfg.write_text(textwrap.dedent(f"""
        run_name: meta_text
        output_dir: {tmp_path / 'runs'}
        model: {{name: tiny-bert}}
        data: {{max_length: 16}}
        train: {{lr: 0.01, seed: 0, num_threads: 1, progress: plain}}
        checkpoint: {{every_steps: 4, keep_last: 2}}
        meta:
          algorithm: maml
          dataset: {data}
          test_classes: [topic-steel, topic-cotton, topic-sugar]
          n_way: 3
          k_shot: 2
          q_queries: 3
          per_class: 12
          trunk_dim: 16
          meta_batch: 2
          meta_iterations: 12
          inner_lr: 0.1
          inner_steps: 1
          test_inner_steps: 2
          test_episodes: 20
    """))
    return cfg


def _cli(capsys, *args):
    """`tunewright ARGS` in this process (a process start costs more than these tiny runs): (exit code, out, err)."""
    from tunewright.cli.main import main
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("samples_per_s", "time")} for r in rows]


def test_text_meta_train_sigkill_resume_and_adapt(tmp_path, capsys):
    data = tmp_path / "topics.csv"
    _write_topics(data, WORDS, 12, seed=0)
    with open(data, "a") as f:                       # a topic too small for an episode: listed, not used
        f.write("x-rare oil said,topic-tiny\n")
    cfg = _config(tmp_path, data)

    code, out, err = _cli(capsys, "meta-train", cfg, "output_dir=" + str(tmp_path / "ref"))
    assert code == 0 and "maml 3-way 2-shot" in out
    assert "topic-tiny" in err and "neither pool" in err
    ref_run = tmp_path / "ref" / "meta_text"
    summary = json.loads((ref_run / "summary.json").read_text())
    assert summary["modality"] == "text" and summary["excluded_classes"] == {"topic-tiny": 1}
    assert summary["test_classes"] == ["topic-cotton", "topic-steel", "topic-sugar"]
    assert set(summary["train_classes"]).isdisjoint(summary["test_classes"]) and len(summary["train_classes"]) == 7

    killed = subprocess.run([sys.executable, "-c", KILLER, "meta-train", str(cfg)], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cut_run = tmp_path / "runs" / "meta_text"
    assert not (cut_run / "summary.json").exists()
    assert (cut_run / "checkpoints" / "step-000004").is_dir()
    code, _, err = _cli(capsys, "meta-train", cfg)          # never replaced silently
    assert code != 0 and "--resume" in err
    assert _cli(capsys, "meta-train", cfg, "--resume")[0] == 0

    a, b = load_file(str(ref_run / "meta_model.safetensors")), load_file(str(cut_run / "meta_model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert _rows(ref_run) == _rows(cut_run)                     # one uninterrupted run in metrics.jsonl
    assert json.loads((cut_run / "summary.json").read_text())["test_acc"] == summary["test_acc"]

    new = tmp_path / "new_topics.csv"                           # adapt --data: text the run never saw
    _write_topics(new, ["grain", "tin", "rubber", "zinc"], 10, seed=1)
    code, out, _ = _cli(capsys, "adapt", cut_run, "--shots", "2", "--data", new, "--episodes", "10")
    res = json.loads(out)
    assert res["classes"] == ["topic-grain", "topic-rubber", "topic-tin", "topic-zinc"] and res["episodes"] == 10
    assert 0.0 <= res["acc"] <= 1.0


def test_bad_text_data_fail_before_any_model_loads(tmp_path, capsys):
    data = tmp_path / "topics.csv"
    _write_topics(data, WORDS[:6], 8, seed=0)
    cfg = _config(tmp_path, data)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\noil price,topic-oil\n")      # no label column
    # a run folder with its config and no weights: only reading the data first names the data
    (tmp_path / "runs" / "meta_text").mkdir(parents=True)
    (tmp_path / "runs" / "meta_text" / "config.yaml").write_text(cfg.read_text())
    code, _, err = _cli(capsys, "adapt", tmp_path / "runs" / "meta_text", "--shots", "2", "--data", bad)
    assert code != 0
    assert "bad.csv" in err and "label" in err, err
    assert "meta_model.safetensors" not in err          # failed on the data, not on the missing weights
