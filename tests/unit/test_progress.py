"""Long phases show a count, a rate and an ETA: plain lines in pipes, rich's bar on a terminal, nothing
for short phases, nothing on the other ranks of torchrun."""
import io

import pytest

from tunewright import progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_lines_count_rate_eta_and_are_throttled():
    out, clock = io.StringIO(), Clock()
    p = progress.Phase("head warm start", 400, mode="plain", stream=out, quiet_s=2, every_s=10, clock=clock)
    clock.t = 1.0
    p.advance(20)                              # within the quiet time: nothing yet
    assert out.getvalue() == ""
    clock.t = 10.0
    p.advance(80)                              # 100 of 400 in 10 s: 10/s, 30 s left
    assert out.getvalue().splitlines() == ["head warm start: 100/400 examples  10.0 examples/s  eta 30s"]
    clock.t = 15.0
    p.advance(50)                              # 5 s after the last line: throttled
    assert len(out.getvalue().splitlines()) == 1
    clock.t = 40.0
    p.advance(250)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[1] == "head warm start: 400/400 examples  10.0 examples/s  eta 0s"
    assert lines[2] == "head warm start: 400 examples in 40s"


def test_a_short_phase_prints_nothing():
    out, clock = io.StringIO(), Clock()
    with progress.Phase("evaluate val", 64, mode="plain", stream=out, quiet_s=2, clock=clock) as p:
        clock.t = 0.5
        p.advance(64)
    assert out.getvalue() == ""


def test_none_mode_and_other_ranks_are_silent(monkeypatch):
    out, clock = io.StringIO(), Clock()
    p = progress.Phase("x", 10, mode="none", stream=out, quiet_s=0, clock=clock)
    clock.t = 5
    p.advance(10)
    p.close()
    monkeypatch.setenv("RANK", "1")
    assert progress.resolve("plain") == "none"
    monkeypatch.setenv("RANK", "0")
    assert progress.resolve("plain") == "plain"
    assert out.getvalue() == ""


def test_outer_phase_prints_each_item_with_eta_even_on_a_terminal():
    class TTY(io.StringIO):
        def isatty(self):
            return True
    out, clock = TTY(), Clock()
    p = progress.Phase("compare", 3, "variants", mode="auto", stream=out, outer=True, clock=clock)
    assert p.mode == "plain"                    # a live bar would fight the variants' own training bars
    p.say("full")
    clock.t = 100.0
    p.advance(1)
    p.say("lora")
    lines = out.getvalue().splitlines()
    assert lines[0] == "compare [1/3]: full"
    assert lines[1] == "compare: 1/3 variants  100 s each  eta 3m20s"
    assert lines[2] == "compare [2/3]: lora  (eta 3m20s)"


def test_track_advances_by_size_and_keeps_every_item(monkeypatch):
    monkeypatch.setattr(progress, "QUIET_S", 0.0)
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    out = io.StringIO()
    items = [range(0, 32), range(32, 64), range(64, 70)]
    got = list(progress.track(items, "evaluate test", 70, "examples", size=len, mode="plain", stream=out))
    assert got == items
    lines = out.getvalue().splitlines()
    assert [ln.split(":")[1].split()[0] for ln in lines[:3]] == ["32/70", "64/70", "70/70"]
    assert lines[-1].startswith("evaluate test: 70 examples in")


def test_use_sets_the_mode_for_phases_inside_it_only():
    with progress.use("none"):
        assert progress.resolve() == "none"
        with progress.use("plain"):
            assert progress.resolve() == "plain"
        assert progress.resolve() == "none"
    with pytest.raises(ValueError, match="bogus"):
        with progress.use("bogus"):
            pass


def test_rich_phase_inside_a_live_bar_becomes_a_row_of_it():
    out = io.StringIO()
    bar = progress.live_bar(out)                # what fit()'s Progress callback holds while training
    try:
        p = progress.Phase("evaluate val", 100, mode="rich", stream=out, quiet_s=0)
        assert p._bar is bar and len(bar.tasks) == 1
        p.advance(100)
        p.close()
        assert len(bar.tasks) == 0 and progress._live is bar
    finally:
        progress.release(bar)
    assert progress._live is None
    alone = progress.Phase("tokenize", 10, mode="rich", stream=out)   # no bar live: it starts its own
    assert alone._own and progress._live is alone._bar
    alone.close()
    assert progress._live is None


@pytest.mark.parametrize("extra, phases", [
    ({"method": "lora"}, ["tokenize", "head warm start", "evaluate val", "evaluate test"]),
    ({"strategy": "feature_extraction"}, ["feature cache (train)", "feature cache (val)"]),
])
def test_a_run_shows_each_long_phase(extra, phases, tmp_path, monkeypatch, capsys):
    """Every phase is shown; here each counts as long (QUIET_S 0) so that tiny data shows them too."""
    from pathlib import Path

    from tunewright.run import train

    data = Path(__file__).resolve().parents[1] / "data"
    monkeypatch.setattr(progress, "QUIET_S", 0.0)
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    cfg = {"task": "classification", "model": {"name": "tiny-bert"}, "output_dir": str(tmp_path), "run_name": "p",
           "data": {"train": str(data / "tiny_train.csv"), "val": str(data / "tiny_val.csv"),
                    "test": str(data / "tiny_test.csv"), "max_length": 32},
           "train": {"epochs": 1, "batch_size": 16, "progress": "plain"}, **extra}
    train(cfg)
    err = capsys.readouterr().err
    for name in phases:
        done = [ln for ln in err.splitlines() if ln.startswith(f"{name}: ") and " in " in ln]
        assert done, f"no closing line for {name!r} in:\n{err}"
        assert any(ln.startswith(f"{name}: ") and "/" in ln and "eta" in ln for ln in err.splitlines()), name


def test_eta_follows_the_work_when_rows_differ_in_cost():
    """Length-sorted batches: the short half of the rows is a fifth of the work, so the ETA is 4x the time
    so far, not 1x as the count alone would say."""
    out, clock = io.StringIO(), Clock()
    lengths = [10] * 50 + [40] * 50
    batches = [list(range(i, i + 10)) for i in range(0, 100, 10)]
    work = progress.padded_work(batches, lengths)
    assert work == 10 * 50 + 40 * 50
    p = progress.Phase("evaluate test", 100, mode="plain", stream=out, quiet_s=0, every_s=0, clock=clock,
                       work_total=work)
    clock.t = 10.0
    for b in batches[:5]:
        p.advance(len(b), work=progress.padded_work([b], lengths))
    assert p.eta() == pytest.approx(40.0)
    assert out.getvalue().splitlines()[-1].endswith("eta 40s")
    assert progress.padded_work(batches, None) is None
