"""ONNX export round trips: a LoRA text classifier (merged) and a CNN image classifier; the graph maps token
ids / pixels straight to logits at any batch size and sequence length, and checks itself."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

UNSEEN = ["the striker scored twice in the final minutes", "shares slid after the bank cut its outlook",
          "heavy snow is expected overnight in the north", "rain"]


def merged_logits(run_dir, texts):
    from tunewright.data import Collator, encode_inputs
    from tunewright.deploy.onnx_export import deployable_model
    cfg, model, tok, _ = deployable_model(run_dir)
    batch = Collator("classification", tok.pad_token_id)(encode_inputs(tok, texts, cfg))
    with torch.no_grad():
        return model(batch).numpy(), batch


def test_text_graph_maps_token_ids_to_the_merged_models_logits(text_export, lora_runs):
    from tunewright.deploy.onnx_runtime import OnnxClassifier
    report, out = text_export
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "labels.json", "deploy.json"} <= {p.name for p in out.iterdir()}
    assert report["merged"] and report["inputs"] == ["input_ids", "attention_mask"]
    assert json.loads((out / "labels.json").read_text()) == ["finance", "sports", "weather"]
    clf = OnnxClassifier(out)
    for texts in (UNSEEN[:1], UNSEEN):          # batch 1 and batch 4 with padding: both axes are dynamic
        ref, batch = merged_logits(lora_runs[0], texts)
        ids = clf.encode(texts)
        assert (ids["input_ids"] == batch["input_ids"].numpy()).all()        # tokenizers == transformers
        assert np.abs(clf.logits(texts) - ref).max() < 1e-4


def test_self_check_figures_are_recorded_and_int8_is_looser(text_export):
    report, out = text_export
    e = json.loads((out / "deploy.json").read_text())["export"]
    assert e["fp32"]["check"]["max_abs_diff"] < 1e-4 <= e["int8"]["check"]["tolerance"]
    assert e["int8"]["check"]["max_abs_diff"] > e["fp32"]["check"]["max_abs_diff"]   # it really is quantized
    assert {"accuracy_drop_points", "size_ratio", "speedup"} <= set(e["int8_vs_fp32"])
    assert 0 <= e["int8"]["test"]["accuracy"] <= 1


def test_int8_quantizes_matmuls_only(text_export):
    import onnx
    _, out = text_export
    ops = {n.op_type for n in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert "MatMulInteger" in ops and "ConvInteger" not in ops


def test_self_check_catches_a_graph_that_disagrees(text_export, lora_runs):
    from tunewright.deploy.onnx_export import (ExportError, check_batch, data_bundle, deployable_model, self_check,
                                               session)
    _, out = text_export
    cfg, model, tok, _ = deployable_model(lora_runs[0])
    batch = check_batch(data_bundle(cfg, tok))
    self_check(session(out / "model.onnx"), model, batch, 1e-3, "fp32")
    with torch.no_grad():
        model.head[1].bias += 0.01                  # PyTorch moves; the exported graph does not
    with pytest.raises(ExportError, match="disagrees"):
        self_check(session(out / "model.onnx"), model, batch, 1e-3, "fp32")


def test_image_classifier_exports_with_its_preprocessing(image_run, tmp_path):
    from tunewright.data import encode_inputs
    from tunewright.deploy.onnx_export import deployable_model, export_onnx
    from tunewright.deploy.onnx_runtime import OnnxClassifier
    report = export_onnx(image_run, tmp_path, quantize="int8")
    pre = report["preprocessing"]
    assert pre["size"] == 16 and len(pre["mean"]) == 3 and report["inputs"] == ["pixel_values"]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]   # not square: resize + crop
    cfg, model, spec, _ = deployable_model(image_run)
    x = torch.stack([e["pixel_values"] for e in encode_inputs(spec, images, cfg)])
    clf = OnnxClassifier(tmp_path)
    assert np.abs(clf.pixels(images)["pixel_values"] - x.numpy()).max() < 1e-5      # numpy preprocessing == ours
    with torch.no_grad():
        ref = model({"pixel_values": x}).numpy()
    assert np.abs(clf.logits(images) - ref).max() < 1e-4
    assert np.abs(OnnxClassifier(tmp_path, "int8").logits(images[:1]) - ref[:1]).max() < 0.25 * max(1, np.abs(ref).max())


def test_causal_lm_to_onnx_points_to_gguf(llama_run, tmp_path):
    from tunewright.errors import ConfigError
    from tunewright.deploy.onnx_export import export_onnx
    with pytest.raises(ConfigError, match="gguf"):
        export_onnx(llama_run, tmp_path)
