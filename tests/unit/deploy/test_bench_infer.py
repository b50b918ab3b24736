"""`tunewright bench-infer`'s rounds: each variant in its own process, medians over rounds, and the throughput
ratio to torch_merged taken within each round (so drift between rounds cancels)."""
import pytest

from tunewright.deploy.bench import combine_rounds, round_order, table

pytest.importorskip("onnxruntime")


def row(variant, tput, p50=10.0, rss=100.0):
    return {"variant": variant, "p50_ms_b1": p50, "p95_ms_b1": 2 * p50, "throughput_b32": tput,
            "peak_rss_mb": rss, "size_mb": 1.0, "accuracy": 0.5}


def test_ratio_is_taken_within_each_round_not_between_medians():
    rounds = {"torch_merged": [row("torch_merged", t) for t in (10, 20, 30)],
              "onnx_int8": [row("onnx_int8", t, rss=r) for t, r in ((20, 90), (30, 80), (90, 70))]}
    merged, int8 = combine_rounds(rounds)
    assert int8["vs_torch_b32"] == 2.0          # rounds 2.0, 1.5, 3.0; the medians' ratio would say 1.5
    assert merged["vs_torch_b32"] == 1.0 and int8["throughput_b32"] == 30 and int8["rounds"] == 3
    assert int8["peak_rss_mb"] == 90 and int8["throughput_b32_rounds"] == [20, 30, 90]
    assert "x torch merged" in table([merged, int8])
    assert "x torch merged" not in table(combine_rounds({"onnx_int8": rounds["onnx_int8"]}))


def test_rounds_alternate_their_order():
    assert round_order(["a", "b", "c"], 3) == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert round_order(["a", "b"], 1) == ["a", "b"]


def test_bench_infer_on_a_tiny_run(text_export, lora_runs):
    from tunewright.deploy.bench import bench_infer
    _, out = text_export
    rows = bench_infer(lora_runs[0], out, ["torch_merged", "onnx_int8"], threads=1, n_single=3, n_batches=1)
    assert [r["variant"] for r in rows] == ["torch_merged", "onnx_int8"]
    for r in rows:
        assert r["rounds"] == 1 and len(r["throughput_b32_rounds"]) == 1 and r["vs_torch_b32"] > 0
        assert 0 <= r["accuracy"] <= 1 and r["size_mb"] > 0
    assert rows[0]["torch_loaded"] and not rows[1]["torch_loaded"]
