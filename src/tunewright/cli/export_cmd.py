"""tunewright export RUN_DIR --format onnx|gguf [--quantize int8] [--output DIR]

ONNX: one graph from token ids (or pixels) to logits, tokenizer and labels beside it, a PEFT adapter merged in;
checked against PyTorch before the command returns (tunewright/deploy/onnx_export.py). GGUF: a causal-LM run,
merged, for llama.cpp and Ollama (tunewright/deploy/gguf_export.py).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="Export a run for deployment (ONNX, with optional int8; GGUF for causal LMs).")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["onnx", "gguf"], default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="ONNX: add model.int8.onnx (dynamic int8 MatMul/Gemm).")
    p.add_argument("--output", help="Output folder (default: RUN_DIR/export/onnx, or RUN_DIR/export/model.gguf).")
    p.add_argument("--no-eval", action="store_true", help="ONNX: skip the accuracy and speed on the test split.")
    p.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="GGUF: tensor type of the weights.")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.format == "gguf":
        from ..deploy.gguf_export import export_gguf
        if args.quantize:
            from ..errors import ConfigError
            raise ConfigError("--quantize applies to ONNX; GGUF files are written as --dtype f32 or f16 (quantize "
                              "them further with llama.cpp's llama-quantize)")
        export_gguf(args.run_dir, args.output, dtype=args.dtype)
        return 0
    from ..deploy.onnx_export import export_onnx
    export_onnx(args.run_dir, args.output, quantize=args.quantize, evaluate=not args.no_eval)
    return 0
