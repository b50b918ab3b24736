"""The fused export of a BERT-family encoder (deploy/onnx_fuse.py): onnxruntime's Attention kernels in the fp32
graph, QAttention and FastGelu in the int8 one, the dynamo graph on request or when the fusion fails, and only
BERT-family text encoders take this path."""
import json

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXTS = ["the striker scored twice in the final minutes", "shares slid after the bank cut its outlook", "rain"]


def ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def graph_matches_merged_model(run_dir, out) -> float:
    """Largest |onnxruntime - merged PyTorch| logit on TEXTS (batch 3, padded: both axes dynamic)."""
    from tunewright.data import Collator, encode_inputs
    from tunewright.deploy.onnx_export import deployable_model
    from tunewright.deploy.onnx_runtime import OnnxClassifier
    cfg, model, tok, _ = deployable_model(run_dir)
    batch = Collator("classification", tok.pad_token_id)(encode_inputs(tok, TEXTS, cfg))
    with torch.no_grad():
        ref = model(batch).numpy()
    return float(np.abs(OnnxClassifier(out).logits(TEXTS) - ref).max())


def test_bert_encoder_gets_fused_attention_and_int8_attention(text_export, lora_runs):
    from tunewright.deploy.onnx_export import deployable_model
    report, out = text_export
    layers = deployable_model(lora_runs[0])[1].backbone.config.num_hidden_layers
    assert report["exporter"] == "torchscript+onnxruntime-fusion"
    assert report["fused_ops"]["Attention"] == layers
    fp32, int8 = ops(out / "model.onnx"), ops(out / "model.int8.onnx")
    assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu"} <= fp32
    assert "FastGelu" not in fp32                      # the fp32 graph keeps the exact GELU
    assert {"QAttention", "FastGelu", "MatMulInteger"} <= int8
    assert json.loads((out / "deploy.json").read_text())["exporter"] == report["exporter"]


def test_dynamo_exporter_on_request(lora_runs, tmp_path):
    from tunewright.deploy.onnx_export import export_onnx
    report = export_onnx(lora_runs[0], tmp_path, evaluate=False, exporter="dynamo")
    assert report["exporter"] == "dynamo" and "fused_ops" not in report
    assert "Attention" not in ops(tmp_path / "model.onnx")
    assert graph_matches_merged_model(lora_runs[0], tmp_path) < 1e-4


def test_attention_that_does_not_fuse_falls_back_to_dynamo(lora_runs, tmp_path, monkeypatch):
    from tunewright.deploy import onnx_fuse
    real = onnx_fuse.fuse

    def fuse_without_attention(src, dst, spec, approximate_gelu):
        stats = real(src, dst, spec, approximate_gelu)
        return {k: v for k, v in stats.items() if k != "Attention"}   # as if the pattern had not matched
    monkeypatch.setattr(onnx_fuse, "fuse", fuse_without_attention)
    from tunewright.deploy.onnx_export import export_onnx
    report = export_onnx(lora_runs[0], tmp_path, quantize="int8", evaluate=False)
    assert report["exporter"] == "dynamo"
    assert "Attention" not in ops(tmp_path / "model.onnx") and "QAttention" not in ops(tmp_path / "model.int8.onnx")
    assert graph_matches_merged_model(lora_runs[0], tmp_path) < 1e-4


def test_eager_attention_is_restored(lora_runs):
    from tunewright.deploy.onnx_export import deployable_model
    from tunewright.deploy.onnx_fuse import eager_attention
    _, model, _, _ = deployable_model(lora_runs[0])
    before = model.backbone.config._attn_implementation
    with eager_attention(model.backbone):
        assert model.backbone.config._attn_implementation == "eager"
    assert model.backbone.config._attn_implementation == before


def test_only_bert_family_text_encoders_are_fused(lora_runs, image_run, llama_run):
    from tunewright.deploy.onnx_export import deployable_model
    from tunewright.deploy.onnx_fuse import fusion_spec
    spec = fusion_spec(deployable_model(lora_runs[0])[1])
    assert spec is not None and spec.ort_model_type == "bert" and spec.layers == 2
    assert fusion_spec(deployable_model(image_run)[1]) is None
    assert fusion_spec(deployable_model(llama_run)[1]) is None
