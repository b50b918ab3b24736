"""tunewright serve RUN_DIR [RUN_DIR ...] --port 8000 [--backend torch|onnx]

Serves one or many runs over HTTP (tunewright/deploy/serve/). Runs on the same backbone share one base model and
each request names its adapter (the run folder's name, or --name). Requests arriving within --batch-window-ms
share one forward pass of up to --max-batch rows. SIGTERM drains the requests in flight, then exits.

Before torch loads, this command sets OMP_WAIT_POLICY=PASSIVE unless the environment already sets it: OpenMP
threads then sleep at the end of each parallel region instead of spinning. A server's model thread computes in
bursts on a CPU it shares (with the event loop, other processes); spinning OpenMP threads burned 10-15x the CPU
time of the forward itself there (MiniLM, 2 threads, batch 1: 660 ms of CPU per request against 49 ms passive,
on a loaded 2-core machine; docs/deploy.md). It is process-wide, so the entry point sets it, not the library.
"""
from __future__ import annotations

import os
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="Serve runs over HTTP: /predict, /generate, /health, /metadata.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: every interface).")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                   help="onnx: the graphs `tunewright export` wrote (RUN_DIR/export/onnx or an export folder).")
    p.add_argument("--onnx-variant", choices=["fp32", "int8"], default="fp32")
    p.add_argument("--name", action="append", help="Adapter name for each RUN_DIR, in order (default: folder name).")
    p.add_argument("--batch-window-ms", type=float, default=5.0)
    p.add_argument("--max-batch", type=int, default=32, help="Rows per forward pass.")
    p.add_argument("--max-inputs", type=int, default=64, help="Inputs per request (more: 413).")
    p.add_argument("--max-input-chars", type=int, default=20_000, help="Characters per input (more: 413).")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="Request body cap (more: 413).")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: the library's).")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run, handles_sigterm=True)     # uvicorn drains the requests in flight on SIGTERM itself


def run(args) -> int:
    if "torch" not in sys.modules:                 # read once, when OpenMP starts: too late after torch loads
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..deploy.serve import Limits, serve
    from ..deploy.serve.engine import OnnxEngine, TorchEngine
    from ..errors import ConfigError

    if args.max_batch < 1 or args.batch_window_ms < 0 or args.max_inputs < 1:
        raise ConfigError(f"--max-batch {args.max_batch} and --max-inputs {args.max_inputs} must be >= 1 and "
                          f"--batch-window-ms {args.batch_window_ms} >= 0")
    if args.backend == "onnx":
        engine = OnnxEngine(args.run_dirs, args.name, args.threads, args.onnx_variant)
    else:
        engine = TorchEngine(args.run_dirs, args.name, args.threads)
    limits = Limits(max_body_bytes=args.max_body_bytes, max_inputs=args.max_inputs,
                    max_input_chars=args.max_input_chars, batch_window_ms=args.batch_window_ms,
                    max_batch=args.max_batch)
    serve(engine, args.host, args.port, limits, args.log_level)
    return 0
