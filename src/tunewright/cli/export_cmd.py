"""tunewright export RUN_DIR --format onnx|gguf [--quantize int8] [--exporter auto|dynamo] [--output DIR]

ONNX: one graph from token ids (or pixels) to logits, tokenizer and labels beside it, a PEFT adapter merged in;
checked against PyTorch before the command returns (tunewright/deploy/onnx_export.py). GGUF: a causal-LM run
(Llama architecture), merged, for llama.cpp and Ollama, F32 or F16 tensors, loaded back through transformers' GGUF
loader and compared with the merged model before the command returns (tunewright/deploy/gguf_export.py).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="Export a run for deployment (ONNX, with optional int8; GGUF for causal LMs).")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["onnx", "gguf"], default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="ONNX: add model.int8.onnx (dynamic int8 MatMul/Gemm/Attention).")
    p.add_argument("--exporter", choices=["auto", "dynamo"], default="auto",
                   help="ONNX: 'auto' fuses BERT-family encoders for onnxruntime's Attention kernels (TorchScript "
                   "exporter + onnxruntime's transformer optimizer), anything else with torch.onnx dynamo; "
                   "'dynamo' always uses torch.onnx dynamo.")
    p.add_argument("--output", help="Output folder (default: RUN_DIR/export/onnx or RUN_DIR/export/gguf).")
    p.add_argument("--no-eval", action="store_true", help="ONNX: skip the accuracy and speed on the test split; "
                   "GGUF: skip loading the file back to compare logits.")
    p.add_argument("--gguf-type", choices=["f32", "f16"], default="f32",
                   help="GGUF tensor type (norms stay F32). F32 round-trips exactly.")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.format == "gguf":
        from ..errors import ConfigError
        if args.quantize:
            raise ConfigError("--quantize int8 is for ONNX; GGUF takes --gguf-type f32|f16 (quantize further with "
                              "llama.cpp's llama-quantize)")
        from ..deploy.gguf_export import export_gguf
        export_gguf(args.run_dir, args.output, dtype=args.gguf_type, check=not args.no_eval)
        return 0
    from ..deploy.onnx_export import export_onnx
    export_onnx(args.run_dir, args.output, quantize=args.quantize, evaluate=not args.no_eval,
                exporter=args.exporter)
    return 0
