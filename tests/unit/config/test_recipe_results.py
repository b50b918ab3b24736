"""The figures in a recipe's header are the benchmark's, for the same settings.

A recipe in configs/ that says `Expect test accuracy A%, macro-F1 F (... benchmarks/results/strategies.json
<task>.<variant> ...)` must match that result file's entry, and the entry's overrides must give the same
config as the recipe (run_name and output_dir aside). Change a recipe's settings and this fails until the
benchmark is rerun and its figures copied here.
"""
import json
import re
from pathlib import Path

import pytest

from tunewright.config import load_config, to_dict
from tunewright.run import as_config
from tunewright.strategies import strategy_spec

REPO = Path(__file__).resolve().parents[3]
RESULTS = json.loads((REPO / "benchmarks" / "results" / "strategies.json").read_text())
CITED = re.compile(r"Expect test accuracy (\d+\.\d+)%, macro-F1 (0\.\d+) \(benchmarks/bench_strategies\.py, [\d-]+:\n"
                   r"# benchmarks/results/strategies\.json (\w+)\.(\w+)")
RECIPES = sorted(p for p in (REPO / "configs").glob("*.yaml") if "strategies.json" in p.read_text())


def comparable(cfg) -> dict:
    d = to_dict(cfg)
    d.pop("run_name"), d.pop("output_dir")
    d["strategy"] = strategy_spec(d["strategy"]).name       # progressive_unfreezing is gradual_unfreezing
    return d


def test_the_recipes_that_cite_a_result_are_found():
    names = {p.stem for p in RECIPES}
    assert {"r8_full", "r8_ulmfit", "r8_partial", "r8_lp_ft", "r8_feature_extraction", "fashion_progressive"} <= names
    assert not [p.name for p in (REPO / "configs").glob("*.yaml") if "RESULT_" in p.read_text()]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_header_matches_the_measured_result_and_its_settings(path):
    m = CITED.search(path.read_text())
    assert m, f"{path.name}: no 'Expect test accuracy A%, macro-F1 F (benchmarks/...: strategies.json X.Y' header"
    acc, f1, task, variant = float(m[1]), float(m[2]), m[3], m[4]
    entry = RESULTS[task][variant]
    assert acc == round(100 * entry["test"]["accuracy"], 2)
    assert f1 == round(entry["test"]["macro_f1"], 3)
    measured = as_config({}, entry["overrides"])
    assert comparable(load_config(path)) == comparable(measured)
