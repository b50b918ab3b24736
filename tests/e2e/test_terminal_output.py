"""What a person sees: tables are never cut (at 80 and 120 columns on a terminal, and in a pipe or log
file, where they are plain text), `tunewright config GROUP`, an early line at start-up, and after
Ctrl-C the progress bar's line ended and the command that resumes the run."""
import io
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = set("┃│┏┓┗┛━─┡┩└┘┌┐╇╈┼╭╮╰╯")

ROWS = [  # a leaderboard as compare writes it: long variant names, every column present
    {"variant": name, "val_accuracy": 0.9012 - i / 100, "test_accuracy": 0.8876 - i / 100, "test_macro_f1": 0.7712,
     "trainable_params": 22_713_096 // (i + 1), "trainable_share": 1 / (i + 1), "train_seconds": 1234.5 / (i + 1),
     "peak_rss_mb": 2101.7, "latency_ms_b1": 11.2345, "throughput_b32": 301.4, "size_mb": 90.86 / (i + 1)}
    for i, name in enumerate(["full", "feature_extraction", "gradual_unfreezing", "discriminative_lr", "lora",
                              "bitfit"])]


def _leaderboard_output(monkeypatch, tmp_path, width=None, terminal=False) -> str:
    """`tunewright compare`'s printing (cli/compare_cmd.py), the comparison itself replaced by a leaderboard.csv."""
    from argparse import Namespace

    import tunewright.compare
    from tunewright.cli import compare_cmd, show
    from tunewright.compare import write_leaderboard

    write_leaderboard(ROWS, tmp_path / "leaderboard.csv")
    monkeypatch.setattr(tunewright.compare, "run_compare", lambda *a, **k: tmp_path)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(show, "is_terminal", lambda stream=None: terminal)
    if width:
        monkeypatch.setenv("COLUMNS", str(width))
    compare_cmd.run(Namespace(config="c.yaml", overrides=[], methods=None, out=None, no_report=True, resume=False))
    return ANSI.sub("", out.getvalue())


@pytest.mark.parametrize("width", [80, 120])
def test_the_leaderboard_is_not_cut_on_a_narrow_terminal(monkeypatch, tmp_path, width):
    from tunewright.compare import leaderboard_cells

    text = _leaderboard_output(monkeypatch, tmp_path, width, terminal=True)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    _, cells = leaderboard_cells(ROWS)
    for row in cells:                 # each value whole, on the line of its variant in one of the tables
        lines = [line for line in text.splitlines() if f" {row[0]} " in line]
        for cell in row:
            assert any(cell in line for line in lines), (cell, lines)


def test_the_leaderboard_in_a_pipe_is_plain_text_one_line_per_variant(monkeypatch, tmp_path):
    from tunewright.compare import leaderboard_cells

    text = _leaderboard_output(monkeypatch, tmp_path, terminal=False)
    assert not BOX & set(text) and "…" not in text
    headers, cells = leaderboard_cells(ROWS)
    lines = text.splitlines()
    assert lines[0] == "tunewright compare" and lines[1].split("  ")[0] == "variant"
    for row, line in zip(cells, lines[2:]):
        assert re.fullmatch(r"\s+".join(re.escape(c) for c in row), line.strip()), line


def test_show_prints_plain_text_when_not_a_terminal(capsys):
    from tunewright.cli.show import print_summary
    print_summary({"test": {"accuracy": 0.86667}, "train_seconds": 12.34, "trainable_params": 10, "total_params": 20},
                  "runs/tiny")
    out = capsys.readouterr().out
    assert not BOX & set(out)
    assert out.splitlines()[0] == "tunewright run: runs/tiny"
    assert re.search(r"^test accuracy\s+0\.8667$", out, re.M)


def run_in_terminal(args, columns=80, timeout=120) -> str:
    """A CLI command on a pseudo-terminal COLUMNS wide; what it printed, colour codes removed."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "PYTHONPATH": str(REPO / "src"), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "tunewright.cli.main", *args], stdout=slave, stderr=slave,
                            cwd=REPO, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:          # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(master)
    assert proc.returncode == 0
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_assets_fit_an_80_column_terminal_and_a_pipe(run_cli):
    from tunewright.cli.assets_cmd import rows

    text = run_in_terminal(["assets"], columns=80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    words = text.split()
    for row in rows():                # every word of every cell is there, unbroken
        for cell in row:
            for w in cell.split():
                assert w in words, (w, cell)
    piped = run_cli("assets").stdout
    assert not BOX & set(piped)
    for kind, name, installed, install, what in rows():
        assert any(line.startswith(name) and install in line and what in line for line in piped.splitlines()), name


def test_config_prints_one_group_with_wrapped_help(run_cli):
    out = run_cli("config", "lora").stdout
    keys = re.findall(r"^  (\S+) = ", out, re.M)
    assert out.startswith("[lora]") and keys and all(k.startswith("lora.") for k in keys)
    everything = run_cli("config").stdout
    assert "[train]" in everything and "[top]" in everything
    assert max(len(line) for line in everything.splitlines()) <= 100
    bad = run_cli("config", "lorra", check=False)
    assert bad.returncode == 2 and "lora" in bad.stderr


def test_start_up_line_and_resume_hint_after_ctrl_c(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tunewright.cli.main", "train", "configs/tiny.yaml",
                             f"output_dir={tmp_path}", "train.progress=plain"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, first = [], None
    for line in proc.stderr:          # step 8 ended epoch 1 and wrote a checkpoint
        first = first or time.monotonic() - t0
        lines.append(line)
        if line.startswith("step 10/"):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    assert lines[0].startswith("tunewright train configs/tiny.yaml: starting") and first < 10, (first, lines[0])
    assert [l for l in lines if l.startswith("loading")] == ["loading data ...\n", "loading model tiny-bert ...\n"]
    assert proc.returncode == 130
    assert "continue from its checkpoint at step 8 with:\n  tunewright train configs/tiny.yaml " \
           f"output_dir={tmp_path} train.progress=plain --resume" in rest, rest


def test_a_stopped_run_ends_the_progress_bar(tmp_path):
    """fit() stopped by Ctrl-C never reaches on_fit_end: finish() closes the bar (its line ended, cursor back)."""
    from types import SimpleNamespace

    from tunewright.tracking.run_log import finish
    from tunewright.training.callbacks import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = Progress("auto", stream)
    assert bar.mode == "rich"
    ctx = SimpleNamespace(state=SimpleNamespace(step=3, total_steps=10, epoch_float=0.3))
    bar.on_fit_start(ctx)
    bar.on_log(ctx, {"loss": 1.0, "lr": 1e-3})
    finish([], tmp_path, status="killed", callbacks=[bar])
    out = stream.getvalue()
    assert out.endswith("\x1b[?25h") and "\n" in out[out.rindex("train"):]   # cursor shown after the bar's newline
