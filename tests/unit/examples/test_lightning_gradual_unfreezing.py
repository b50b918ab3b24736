"""examples/lightning_gradual_unfreezing.py runs, and a resumed Lightning run keeps its unfrozen groups."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("lightning")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "lightning_gradual_unfreezing.py"


def load_example():
    spec = importlib.util.spec_from_file_location("lightning_gradual_unfreezing", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_unfreezes_top_down_and_resume_keeps_unfrozen_groups(tmp_path):
    example = load_example()
    out = example.main(["--epochs", "3", "--interrupt-after", "2", "--out", str(tmp_path)])
    # epochs 0-1 in the first trainer, epoch 2 in a new module + trainer resumed from last.ckpt
    assert out["history"] == [["head"], ["block.1", "head"], ["block.0", "block.1", "head"]]
    assert out["training_now"] == {"embeddings": False, "block.0": True, "block.1": True, "head": True}
    module = out["module"]
    assert module.unfrozen == 3
    opt_params = [id(p) for g in module.trainer.optimizers[0].param_groups for p in g["params"]]
    assert len(opt_params) == len(set(opt_params)) == len(list(module.model.parameters()))
