"""A BERT-family text encoder exported for onnxruntime's fused CPU kernels.

    fusion_spec(model) -> FusionSpec | None     None: not an architecture onnxruntime's optimizer fuses
    export_fused(graph, model, args, names, raw, fp32, int8_source, spec) -> fusion statistics, or None

Why this path exists beside `torch.onnx.export(dynamo=True)` (onnx_export.trace): onnxruntime's transformer
optimizer (`onnxruntime.transformers.optimizer`, the library that does this job; we only drive it) pattern-matches
the attention subgraph that the TorchScript exporter writes for Hugging Face's *eager* attention, and replaces
each layer's 20-odd nodes with one `Attention` kernel, the embeddings with `EmbedLayerNormalization`, the residual
adds with `SkipLayerNormalization` and the FFN's bias + GELU with `BiasGelu`. The dynamo graph (with SDPA or
eager attention) gets none of the attention fusions. Measured on MiniLM (the R8 LoRA run, 8 test batches of
32 x 128 tokens, AMD EPYC avx2, 2 threads, median of 4 rounds in alternating order): fused fp32 41.4 samples/s
against the dynamo graph's 31.9 (1.30x); fused int8, whose attention is quantized too (`QAttention`), 68.2
against 53.0 (1.29x). So for the architectures below `tunewright export` takes this path by default
(`--exporter dynamo` forces the other); every other model takes the dynamo path. The fusion is checked, not
assumed: fewer Attention nodes than layers falls back to the dynamo graph.

The int8 graph's source is fused with the tanh approximation of GELU (`FastGelu`): faster in a one-run probe
(fp32 at 32 x 96 tokens: 58.9 against 53.0 samples/s), and its error (~1e-2 on the logits) is far inside int8's own; the fp32 graph keeps the exact GELU, so it matches PyTorch
to ~1e-5.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

# Hugging Face model_type -> onnxruntime optimizer model_type, for encoders whose eager attention it fuses.
FUSABLE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert", "electra": "bert"}
TORCHSCRIPT_OPSET = 17
MAX_BYTES = 1_800_000_000  # a single ONNX protobuf holds < 2 GB; larger encoders go through the dynamo path


@dataclass(frozen=True)
class FusionSpec:
    ort_model_type: str
    num_heads: int
    hidden_size: int
    layers: int


def fusion_spec(model) -> FusionSpec | None:
    """What onnxruntime's optimizer needs to fuse `model`'s backbone, or None where it cannot."""
    if model.modality != "text" or model.task == "causal_lm":
        return None
    config = getattr(model.backbone, "config", None)
    kind = FUSABLE.get(getattr(config, "model_type", None))
    if kind is None or not hasattr(model.backbone, "set_attn_implementation"):
        return None
    if sum(p.numel() * p.element_size() for p in model.parameters()) > MAX_BYTES:
        return None
    return FusionSpec(kind, config.num_attention_heads, config.hidden_size, config.num_hidden_layers)


@contextlib.contextmanager
def eager_attention(backbone):
    """The backbone with Hugging Face's eager attention (the pattern the optimizer matches), then as it was."""
    before = backbone.config._attn_implementation
    backbone.set_attn_implementation("eager")
    try:
        yield
    finally:
        backbone.set_attn_implementation(before)


def trace_torchscript(graph, model, args: tuple, names: tuple[str, ...], path: Path) -> None:
    """The TorchScript exporter with dynamic batch and sequence axes (the optimizer matches its attention)."""
    with eager_attention(model.backbone), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice and tracer warnings about Python shape arithmetic
        torch.onnx.export(graph, args, str(path), dynamo=False, input_names=list(names), output_names=["logits"],
                          dynamic_axes={k: {0: "batch", 1: "sequence"} for k in names},
                          opset_version=TORCHSCRIPT_OPSET)


def fuse(src: Path, dst: Path, spec: FusionSpec, approximate_gelu: bool) -> dict:
    """onnxruntime's transformer optimizer on `src`, written to `dst`; returns {fused op type: count}."""
    import logging

    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    options = FusionOptions(spec.ort_model_type)
    options.enable_gelu_approximation = approximate_gelu
    quiet = logging.getLogger("onnxruntime.transformers")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        optimized = optimize_model(str(src), model_type=spec.ort_model_type, num_heads=spec.num_heads,
                                   hidden_size=spec.hidden_size, optimization_options=options)
    finally:
        quiet.setLevel(level)
    optimized.save_model_to_file(str(dst))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def export_fused(graph, model, args: tuple, names: tuple[str, ...], raw: Path, fp32: Path, int8_source: Path | None,
                 spec: FusionSpec) -> dict | None:
    """Trace to `raw`, fuse it (exact GELU) to `fp32` and, if asked, (FastGelu) to `int8_source`. Returns the fp32
    graph's fusion statistics, or None when the attention did not fuse in every layer (the caller falls back)."""
    trace_torchscript(graph, model, args, names, raw)
    stats = fuse(raw, fp32, spec, approximate_gelu=False)
    if stats.get("Attention", 0) < spec.layers:
        fp32.unlink(missing_ok=True)
        return None
    if int8_source is not None:
        fuse(raw, int8_source, spec, approximate_gelu=True)
    return stats
