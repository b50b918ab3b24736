"""`export_onnx(run_dir)`: a run's best model as one ONNX graph from token ids (or pixels) to logits.

    out/model.onnx          fp32; inputs input_ids, attention_mask (B, T) int64  | pixel_values (B, 3, S, S) float32
                            output logits (B, C); batch and sequence axes are dynamic
    out/model.int8.onnx     with --quantize int8: onnxruntime's dynamic quantization of MatMul/Gemm/Attention
    out/tokenizer.json ...  the run's tokenizer files (text), so a client tokenizes exactly as training did
    out/labels.json         the label names, index = logit column
    out/deploy.json         task, inputs, max_length, pad id, image preprocessing, and the self-check figures

The graph is traced from a small wrapper whose forward is the TaskModel's: backbone, pooling and head are all
in it. A PEFT run is merged first (`tunewright.peft.merged_model`), so the graph is a plain model at the base
model's cost. The tracer is `torch.onnx.export(..., dynamo=True)` (torch.export, then onnxscript), except for
BERT-family encoders under the default `exporter="auto"`: those are traced with the TorchScript exporter and fused
by onnxruntime's transformer optimizer, because only that graph gets onnxruntime's fused Attention kernels
(onnx_fuse.py has the measurements).

Before it returns, the export checks itself: onnxruntime's logits against PyTorch's on a batch of the run's
validation data; the largest absolute difference is printed, and a difference above the tolerance is an
error (int8 has its own, looser tolerance). With `evaluate=True` it also reports the accuracy of each graph on
the run's test split and their throughput on the same batches (the int8 speedup).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, MethodError, TunewrightError

FP32, INT8 = "model.onnx", "model.int8.onnx"
DEPLOY_META, LABELS = "deploy.json", "labels.json"
EXPORTERS = ("auto", "dynamo")
OPSET = 18
# Largest |onnxruntime - torch| logit difference accepted: fp32 differs by kernel rounding only (~1e-5); int8
# quantizes every matmul's weights and activations, so its bound scales with the logits' magnitude.
FP32_ATOL = 1e-3
INT8_RTOL = 0.25   # of max(1, largest |logit|); the test-split accuracy drop is the figure that matters


class ExportError(TunewrightError):
    """The exported graph is missing, fails to load, or disagrees with PyTorch."""


class LogitsGraph(nn.Module):
    """Positional tensors in, logits out: the shape `torch.onnx.export` wants around a TaskModel's dict forward."""

    def __init__(self, model, input_names: tuple[str, ...]):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, first: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        tensors = (first,) if second is None else (first, second)
        return self.model(dict(zip(self.input_names, tensors)))


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def input_names(model) -> tuple[str, ...]:
    return {"text": ("input_ids", "attention_mask"), "image": ("pixel_values",), "tensor": ("inputs",)}[model.modality]


def data_bundle(cfg, preprocessor):
    from ..data import build_data, read_data
    return build_data(read_data(cfg), preprocessor, cfg)


def check_batch(bundle, n: int = 16) -> dict:
    """The first n rows of the validation split (else test, else train), collated: the self-check's batch."""
    ds = bundle.val or bundle.test or bundle.train
    return bundle.collate([ds[i] for i in range(min(n, len(ds)))])


def deployable_model(run_dir):
    """(cfg, plain TaskModel in eval mode, preprocessor, meta): the run's best model, a PEFT adapter merged in."""
    from ..peft import can_merge, merged_model
    from ..run import load_run

    cfg, model, preprocessor, meta = load_run(run_dir)
    if cfg.method != "none":
        if not can_merge(model):
            raise MethodError(f"{run_dir}: method {cfg.method} cannot be merged into the weights (virtual tokens or "
                              f"non-linear adapters), so it has no plain graph to export.")
        merged_model(model)
    return cfg, model.eval(), preprocessor, meta


def trace(model, batch: dict, path: Path) -> None:
    """`torch.onnx.export(dynamo=True)` with dynamic batch (and sequence) axes, written to `path`."""
    names = input_names(model)
    args = tuple(batch[k] for k in names)
    if args[0].shape[0] < 2:
        raise ExportError("the example batch needs at least 2 rows: torch.export specialises a dimension of size 1")
    b = torch.export.Dim("batch", min=1, max=4096)
    dyn = {k: {0: b} for k in names}
    if model.modality == "text":
        if args[0].shape[1] < 2:
            raise ExportError("the example batch needs rows of at least 2 tokens (a size-1 axis is specialised)")
        t = torch.export.Dim("sequence", min=1, max=100_000)
        dyn = {k: {0: b, 1: t} for k in names}
    graph = LogitsGraph(model, names).eval()
    with torch.no_grad():
        program = torch.onnx.export(graph, args, dynamo=True, input_names=list(names), output_names=["logits"],
                                    dynamic_shapes=tuple(dyn[k] for k in names), opset_version=OPSET,
                                    optimize=True, verbose=False)
    program.save(str(path))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 (weights per output channel, activations per batch) on MatMul, Gemm and fused Attention:
    onnxruntime's CPU provider lacks ConvInteger kernels for several cases, so convolutions stay fp32. Per-channel
    weight scales halved the logit error against per-tensor ones on the tiny test model (0.22 vs 0.42).
    onnxruntime's shape pre-processing (quant_pre_process) changed nothing here, and its symbolic pass fails on the
    dynamo graph's Min(512, sequence) position slice, so it is not run. DefaultTensorType: the fused graph's
    contrib ops carry no inferred output types, which the quantizer otherwise refuses."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its "consider pre-processing" hint
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm", "Attention"],
                     weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def write_graph(model, batch: dict, out: Path, tmp: Path, exporter: str, quantize: str | None, t0: float) -> dict:
    """model.onnx (and model.int8.onnx): fused for onnxruntime where `exporter` is "auto" and onnx_fuse knows the
    architecture, else the dynamo graph. Returns what deploy.json records about the graph."""
    from .onnx_fuse import TORCHSCRIPT_OPSET, export_fused, fusion_spec
    names = input_names(model)
    spec = fusion_spec(model) if exporter == "auto" else None
    int8_source = (tmp / "int8_source.onnx") if quantize == "int8" else None
    stats = None
    if spec is not None:
        say(f"[2/4] tracing to ONNX (TorchScript exporter, eager attention) and fusing it with onnxruntime's "
            f"transformer optimizer ... ({time.perf_counter() - t0:.0f} s)")
        graph = LogitsGraph(model, names).eval()
        stats = export_fused(graph, model, tuple(batch[k] for k in names), names, tmp / "raw.onnx", out / FP32,
                             int8_source, spec)
        if stats is not None:
            say(f"      fused: {', '.join(f'{v} {k}' for k, v in stats.items())}")
            info = {"exporter": "torchscript+onnxruntime-fusion", "opset": TORCHSCRIPT_OPSET, "fused_ops": stats}
        else:
            say("      the attention did not fuse in every layer: exporting with dynamo instead")
    if stats is None:
        say(f"[2/4] tracing to ONNX (torch.export + onnxscript, opset {OPSET}) ... "
            f"({time.perf_counter() - t0:.0f} s)")
        trace(model, batch, out / FP32)
        info, int8_source = {"exporter": "dynamo", "opset": OPSET}, out / FP32
    if quantize == "int8":
        say(f"[2/4] quantizing MatMul/Gemm/Attention weights to int8 ... ({time.perf_counter() - t0:.0f} s)")
        quantize_int8(int8_source, out / INT8)
    return info


def session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    from .onnx_runtime import session_options
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types; name the file
        raise ExportError(f"{path}: onnxruntime cannot load it: {err}") from None


def feeds(batch: dict, names: tuple[str, ...]) -> dict:
    return {k: batch[k].numpy() for k in names}


def self_check(sess, model, batch: dict, tolerance: float, label: str) -> dict:
    """onnxruntime against PyTorch on `batch`: the largest |logit difference|, and whether the labels agree."""
    names = input_names(model)
    with torch.no_grad():
        ref = model({k: batch[k] for k in names}).float().numpy()
    got = sess.run(["logits"], feeds(batch, names))[0]
    diff = float(np.abs(got - ref).max())
    bound = tolerance * (max(1.0, float(np.abs(ref).max())) if label == "int8" else 1.0)
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean()) if ref.ndim == 2 else 1.0
    say(f"self-check {label}: max |onnxruntime - torch| logit difference = {diff:.3g} on {ref.shape[0]} validation "
        f"rows (tolerance {bound:.3g}); labels agree on {100 * agree:.1f}%")
    if not np.isfinite(diff) or diff > bound:
        raise ExportError(f"{label} graph disagrees with PyTorch: max |logit difference| {diff:.3g} > {bound:.3g}")
    return {"max_abs_diff": diff, "tolerance": bound, "label_agreement": agree, "rows": int(ref.shape[0])}


def evaluate_graph(sess, names, dataset, collate, batch_size: int = 32, label: str = "") -> dict:
    """Accuracy of a graph on a labelled split, and its throughput on those batches (samples/s)."""
    preds, labels, seconds = [], [], 0.0
    n = len(dataset)
    for k, s in enumerate(range(0, n, batch_size)):
        batch = collate([dataset[i] for i in range(s, min(s + batch_size, n))])
        t0 = time.perf_counter()
        logits = sess.run(["logits"], feeds(batch, names))[0]
        seconds += time.perf_counter() - t0
        preds.append(logits.argmax(-1))
        labels.append(batch["labels"].numpy())
        if k % 10 == 0 or s + batch_size >= n:
            print(f"\r  evaluating {label} on the test split: {min(s + batch_size, n)}/{n}", end="", file=sys.stderr,
                  flush=True)
    print(file=sys.stderr)
    acc = float((np.concatenate(preds) == np.concatenate(labels)).mean())
    return {"accuracy": acc, "samples_per_s": round(n / max(seconds, 1e-9), 2), "rows": n}


def describe(cfg, model, preprocessor, meta) -> dict:
    """What a client needs besides the graph: inputs, tokenization and image preprocessing, labels."""
    from ..data import pad_id_of
    from ..data.build import token_limit
    from ..models.image_spec import ImageSpec

    info = {"format": "tunewright-onnx", "version": 1, "task": model.task, "modality": model.modality,
            "inputs": list(input_names(model)), "output": "logits", "label_names": meta.get("label_names"),
            "model_name": model.name, "run_name": cfg.run_name, "method": cfg.method,
            "merged": cfg.method != "none", "torch": torch.__version__}
    if model.modality == "text":
        info.update(max_length=token_limit(preprocessor, cfg), pad_id=pad_id_of(preprocessor),
                    tokenizer="tokenizer.json")
    elif isinstance(preprocessor, ImageSpec):
        info["preprocessing"] = {
            "size": preprocessor.size, "mean": list(preprocessor.mean), "std": list(preprocessor.std),
            "steps": ["decode to RGB", "resize the shorter side to size (bilinear)", "center-crop size x size",
                      "to float32 in [0, 1], channels first (3, size, size)", "(x - mean) / std per channel"],
            "layout": "NCHW float32"}
    return info


def export_onnx(run_dir, out_dir=None, *, quantize: str | None = None, evaluate: bool = True,
                exporter: str = "auto") -> dict:
    """Export `run_dir`'s best model to `out_dir` (default RUN_DIR/export/onnx); returns the report (also in
    deploy.json). `quantize="int8"` adds model.int8.onnx; `evaluate` measures both on the test split.
    `exporter="auto"` fuses BERT-family encoders for onnxruntime (onnx_fuse.py), "dynamo" never does."""
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize!r}: the only quantization is 'int8'")
    if exporter not in EXPORTERS:
        raise ConfigError(f"--exporter {exporter!r}: use one of {list(EXPORTERS)}")
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "export" / "onnx"
    t0 = time.perf_counter()
    say(f"[1/4] loading {run_dir} (a PEFT adapter is merged into the weights)")
    cfg, model, preprocessor, meta = deployable_model(run_dir)
    if model.task not in ("classification", "image_classification", "multilabel", "regression"):
        raise ConfigError(f"{run_dir} is a {model.task} run: export causal LMs with --format gguf")
    bundle = data_bundle(cfg, preprocessor)
    batch = check_batch(bundle)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        graph_info = write_graph(model, batch, out, Path(tmp), exporter, quantize, t0)
    info = {**describe(cfg, model, preprocessor, meta), **graph_info}
    if model.modality == "text":
        preprocessor.save_pretrained(str(out))
    (out / LABELS).write_text(json.dumps(meta.get("label_names"), indent=2))
    say(f"[3/4] checking {out / FP32} against PyTorch ... ({time.perf_counter() - t0:.0f} s)")
    names = input_names(model)
    fp32 = session(out / FP32)
    report = {"fp32": {"file": FP32, "bytes": (out / FP32).stat().st_size,
                       "check": self_check(fp32, model, batch, FP32_ATOL, "fp32")}}
    if quantize == "int8":
        int8 = session(out / INT8)
        report["int8"] = {"file": INT8, "bytes": (out / INT8).stat().st_size,
                          "check": self_check(int8, model, batch, INT8_RTOL, "int8")}
    if evaluate and bundle.test is not None and model.task in ("classification", "image_classification"):
        say(f"[4/4] accuracy on the test split ({len(bundle.test)} rows) ... ({time.perf_counter() - t0:.0f} s)")
        for variant, sess in [("fp32", fp32)] + ([("int8", int8)] if quantize == "int8" else []):
            report[variant]["test"] = evaluate_graph(sess, names, bundle.test, bundle.collate, label=variant)
        if quantize == "int8":
            f, q = report["fp32"]["test"], report["int8"]["test"]
            report["int8_vs_fp32"] = {"accuracy_drop_points": round(100 * (f["accuracy"] - q["accuracy"]), 3),
                                      "size_ratio": round(report["int8"]["bytes"] / report["fp32"]["bytes"], 3),
                                      "speedup": round(q["samples_per_s"] / max(f["samples_per_s"], 1e-9), 3)}
    info["export"] = report
    (out / DEPLOY_META).write_text(json.dumps(info, indent=2))
    say(summary_lines(out, report, time.perf_counter() - t0))
    return {"out_dir": str(out), **info}


def summary_lines(out: Path, report: dict, seconds: float) -> str:
    lines = [f"written: {out} in {seconds:.0f} s"]
    for v in ("fp32", "int8"):
        if v in report:
            r = report[v]
            acc = f", test accuracy {100 * r['test']['accuracy']:.2f}%, {r['test']['samples_per_s']:.1f} samples/s" \
                if "test" in r else ""
            lines.append(f"  {r['file']}: {r['bytes'] / 1e6:.1f} MB, max |logit diff| vs torch "
                         f"{r['check']['max_abs_diff']:.3g}{acc}")
    if "int8_vs_fp32" in report:
        c = report["int8_vs_fp32"]
        lines.append(f"  int8 vs fp32: accuracy {-c['accuracy_drop_points']:+.2f} points, size x{c['size_ratio']}, "
                     f"speed x{c['speedup']}")
    return "\n".join(lines)
