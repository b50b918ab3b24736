"""Deployment: export a run (ONNX with optional int8; GGUF for causal LMs), serve runs over HTTP, and measure
inference of every deployable variant of a run.

    export_onnx(run_dir, out_dir, quantize="int8")   onnx_export.py   token ids / pixels -> logits, self-checked
    export_gguf(run_dir, out_dir, dtype="f32")       gguf_export.py   a merged Llama LM for llama.cpp, self-checked
    OnnxClassifier(export_dir)                       onnx_runtime.py  the exported graph + tokenizer, no torch needed
    build_app(runs, backend=...)                     serve/           FastAPI app: dynamic batching, many adapters
    bench_infer(run_dir)                             bench.py         latency, throughput, RSS, size, accuracy

The heavy imports (onnx, onnxruntime, fastapi) happen inside these modules, so `import tunewright` never
needs the `deploy` extra.
"""
