"""tunewright bench-infer RUN_DIR [--threads 2] [--repeats R] [--test-subset N] [--output table.json]

PyTorch with the adapter, PyTorch merged, the base without the adapter, ONNX fp32 and ONNX int8, each in a process
of its own: p50/p95 latency at batch 1, throughput at batch 32, peak RSS, size on disk, test accuracy
(tunewright/deploy/bench.py). Exports the ONNX graphs first if RUN_DIR/export/onnx lacks them.

Sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads, as `tunewright serve` does (cli/serve_cmd.py says
why); the children inherit it, and ONNX sessions then do not spin either (deploy/onnx_runtime.session_options).
"""
from __future__ import annotations

import json
import os
import sys


def add_parser(sub) -> None:
    from ..deploy.bench import VARIANTS
    p = sub.add_parser("bench-infer", help="Latency, throughput, memory, size and accuracy of each deployable variant.")
    p.add_argument("run_dir")
    p.add_argument("--export-dir", help="Where the ONNX graphs are (default: RUN_DIR/export/onnx).")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-single", type=int, default=50, help="Batch-1 calls timed (p50/p95 over them).")
    p.add_argument("--n-batches", type=int, default=4, help="Batches of 32 timed for the throughput.")
    p.add_argument("--repeats", type=int, default=1, help="Rounds over the variants (alternating order); the "
                   "table gives each timing's median and the throughput ratio to torch_merged within a round.")
    p.add_argument("--test-subset", type=int, help="Measure accuracy on the first N test rows only.")
    p.add_argument("--output", help="Also write the rows as JSON here.")
    p.set_defaults(func=run)


def run(args) -> int:
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..deploy.bench import bench_infer, table
    rows = bench_infer(args.run_dir, args.export_dir, args.variants, args.threads, args.n_single, args.n_batches,
                       args.test_subset, args.repeats)
    print(table(rows))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=2)
    return 0
