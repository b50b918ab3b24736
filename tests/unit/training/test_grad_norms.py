"""The per-layer-group gradient norms combine to the global norm the loop logs (both before clipping)."""
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_group_norms_combine_to_the_global_norm(tmp_path):
    import json

    from tunewright import train

    res = train(REPO / "configs" / "tiny.yaml", [f"output_dir={tmp_path}", "train.epochs=1", "train.progress=none",
                                                 "train.log_every_steps=1"])
    rows = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    assert train_rows
    for r in train_rows:
        groups = {k: v for k, v in r.items() if k.startswith("grad_norm/")}
        assert {"grad_norm/head", "grad_norm/block.0"} <= set(groups)
        assert math.sqrt(sum(v * v for v in groups.values())) == pytest.approx(r["grad_norm"], rel=1e-4)
