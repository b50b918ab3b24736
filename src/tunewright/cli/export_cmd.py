"""tunewright export RUN_DIR --format onnx|gguf [--quantize int8] [--output DIR]

ONNX: one graph from token ids (or pixels) to logits, tokenizer and labels beside it, a PEFT adapter merged in;
checked against PyTorch before the command returns (tunewright/deploy/onnx_export.py). GGUF: a causal-LM run,
merged, for llama.cpp and Ollama: not implemented yet (the command says so).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="Export a run for deployment (ONNX, with optional int8; GGUF for causal LMs).")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["onnx", "gguf"], default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="ONNX: add model.int8.onnx (dynamic int8 MatMul/Gemm).")
    p.add_argument("--output", help="Output folder (default: RUN_DIR/export/onnx, or RUN_DIR/export/model.gguf).")
    p.add_argument("--no-eval", action="store_true", help="ONNX: skip the accuracy and speed on the test split.")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.format == "gguf":
        from ..errors import ConfigError
        # Not written yet (issue #17, GGUF part): the writer, the q/k rotary permutation and the tokenizer metadata.
        raise ConfigError("--format gguf is not implemented yet; export a causal LM with `tunewright merge` for now")
    from ..deploy.onnx_export import export_onnx
    export_onnx(args.run_dir, args.output, quantize=args.quantize, evaluate=not args.no_eval)
    return 0
