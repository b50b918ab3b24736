"""bench_beyond's continual table: mean ± sd over seeds, and the forgetting avoided paired with naive
fine-tuning on the same seed."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _module():
    spec = importlib.util.spec_from_file_location("_beyond_continual", BENCH / "_beyond_continual.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _row(method, seed, acc, bwt, scenario="class"):
    return {"method": method, "scenario": scenario, "seed": seed, "acc": acc, "bwt": bwt, "fwt": 0.0, "seconds": 2.0}


def test_forgetting_avoided_is_paired_by_seed_and_rows_keep_their_order():
    rows = [_row("naive", 0, 0.2, -0.9), _row("naive", 1, 0.3, -0.5),
            _row("replay", 1, 0.7, -0.2), _row("replay", 0, 0.6, -0.3),   # seeds out of order: paired by seed
            _row("adapters", 0, 0.9, 0.0, "task"), _row("adapters", 1, 0.8, 0.0, "task")]
    table = _module().table_continual({"rows": rows, "seeds": [0, 1]})
    lines = [x for x in table.splitlines() if x.startswith("| class") or x.startswith("| task")]
    assert [x.split(" | ")[1] for x in lines] == ["naive", "replay", "adapters"]
    replay = lines[1].split(" | ")
    # BWT - naive's BWT: seed 0: -0.3 - -0.9 = +0.6; seed 1: -0.2 - -0.5 = +0.3 -> mean 0.45, sd 0.212
    assert replay[4] == "+0.450 ± 0.212", replay
    assert replay[2] == "0.650 ± 0.071"
    assert lines[2].split(" | ")[4] == "-"            # no naive row in the task scenario: nothing to pair with


def test_live_continual_recipes_are_the_benchmark_settings():
    import pytest
    from tunewright.config import load_config, to_dict
    from tunewright.config.load import config_from_dict
    bench = _module()
    repo = BENCH.parent
    for recipe, settings in (("continual_effnet_split_fashion.yaml", bench.CL_EFFNET),
                             ("continual_text_lora.yaml", bench.CL_TEXT_LIVE)):
        got = to_dict(load_config(repo / "configs" / recipe))
        want = to_dict(config_from_dict({**settings, "continual": {**settings["continual"], "scenario": "class"}}))
        for d in (got, want):
            d.pop("run_name"), d.pop("output_dir")
        if got != want:
            diff = {k: (got[k], want[k]) for k in got if got[k] != want[k]}
            pytest.fail(f"{recipe} differs from the benchmark's settings: {diff}")
