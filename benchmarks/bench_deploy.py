"""The deployment table of docs/deploy.md: bench-infer on an R8 LoRA run, and an HTTP load test.

    python benchmarks/bench_deploy.py [--run runs_bench/r8_lora_short] [--requests 2000] [--clients 8] [--repeats 3]

1. Trains a shortened R8 LoRA run if --run does not exist (configs/r8_lora.yaml with the overrides in SHORT).
2. `export_onnx` afresh, then `bench_infer`: PyTorch with the adapter, merged, the base, ONNX fp32 and int8 (each
   in its own process), in --repeats rounds: medians, and throughput ratios to torch merged within each round.
3. Load test over real HTTP on loopback: `tunewright serve` with the run loaded under 3 adapter names (3 adapters
   on one base; they hold the same weights, the server treats them as 3 adapters), N requests of one text each from
   C concurrent clients across the 3 adapters, bounded by --max-seconds; then the same against a naive FastAPI
   endpoint that runs the model once per request (this file, --naive-server), and `tunewright serve --backend onnx`
   on the int8 graphs. Reports p50/p95 and throughput.
Writes benchmarks/results/deploy.json and prints the markdown tables.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHORT = ["data.train_subset=480", "data.test_subset=300", "data.max_length=128", "train.epochs=2",
         "train.progress=none"]
# OMP_WAIT_POLICY: what `tunewright serve` sets for itself; both servers and every bench-infer child get it, so
# the comparison is of batching, not of OpenMP's spinning (cli/serve_cmd.py says why it matters on a shared CPU).
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONWARNINGS": "ignore", "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


# batched: `tunewright serve` (PyTorch, 3 LoRA adapters on one base); naive: one model call per request on the
# same engine (the goal's comparison: only the batching differs); batched_onnx_int8: `tunewright serve --backend
# onnx --onnx-variant int8` on the exported graphs, what a CPU deployment would run.
KINDS = ("batched", "naive", "batched_onnx_int8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc, limit: float = 300) -> None:
    import httpx
    t0 = time.time()
    while time.time() - t0 < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise RuntimeError("server did not start")


async def load(url: str, texts: list[str], adapters: list[str], n: int, clients: int, max_seconds: float) -> dict:
    import httpx
    lat, errors, sent = [], 0, 0
    deadline = time.perf_counter() + max_seconds

    async def client(c: httpx.AsyncClient, k: int) -> None:
        nonlocal errors, sent
        while sent < n and time.perf_counter() < deadline:
            i = sent
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await c.post(f"{url}/predict", json={"inputs": [texts[i % len(texts)]],
                                                         "adapter": adapters[i % len(adapters)]})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat.append(1000 * (time.perf_counter() - t0))
            errors += not ok

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, k) for k in range(clients)))
        wall = time.perf_counter() - t0
    return {"requests": len(lat), "errors": errors, "seconds": round(wall, 2), "req_per_s": round(len(lat) / wall, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1)}


def naive_server(run_dir: str, port: int) -> None:
    """One model call per request, in FastAPI's thread pool: what a first deployment usually looks like."""
    import uvicorn
    from fastapi import FastAPI

    from tunewright.deploy.serve.engine import TorchEngine
    engine = TorchEngine([run_dir] * 3, ["a", "b", "c"])
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict):
        return {"predictions": engine.predict([(body.get("adapter", "a"), x) for x in body["inputs"]])}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): the server's cost, whoever else shares the CPU."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_test(run_dir: Path, texts: list[str], n: int, clients: int, max_seconds: float, threads: int) -> dict:
    import httpx
    out = {}
    for kind in KINDS:
        port = free_port()
        if kind != "naive":
            cmd = [sys.executable, "-m", "tunewright.cli.main", "serve", *[str(run_dir)] * 3, "--name", "a", "--name",
                   "b", "--name", "c", "--port", str(port), "--threads", str(threads), "--log-level", "warning",
                   "--batch-window-ms", "5", "--max-batch", "32"]
            if kind == "batched_onnx_int8":
                cmd += ["--backend", "onnx", "--onnx-variant", "int8"]
        else:
            cmd = [sys.executable, __file__, "--naive-server", str(run_dir), "--port", str(port)]
        env = {**ENV, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_up(url, proc)
            asyncio.run(load(url, texts, ["a", "b", "c"], 3 * clients, clients, 60))        # warm-up
            print(f"  load test: {kind} ...", file=sys.stderr, flush=True)
            cpu0 = cpu_seconds(proc.pid)
            out[kind] = asyncio.run(load(url, texts, ["a", "b", "c"], n, clients, max_seconds))
            out[kind]["server_cpu_ms_per_request"] = round(1000 * (cpu_seconds(proc.pid) - cpu0)
                                                           / max(out[kind]["requests"], 1), 1)
            if kind != "naive":
                out[kind]["batching"] = httpx.get(f"{url}/metadata", timeout=10).json()["batching"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    out["speedup"] = round(out["batched"]["req_per_s"] / max(out["naive"]["req_per_s"], 1e-9), 2)
    out["speedup_onnx_int8"] = round(out["batched_onnx_int8"]["req_per_s"] / max(out["naive"]["req_per_s"], 1e-9), 2)
    out["cpu_ratio"] = round(out["naive"]["server_cpu_ms_per_request"]
                             / max(out["batched"]["server_cpu_ms_per_request"], 1e-9), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default=str(REPO / "runs" / "r8_lora_short"))
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--test-subset", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3, help="bench-infer rounds (medians, ratios within a round)")
    p.add_argument("--n-batches", type=int, default=8, help="bench-infer: batches of 32 timed per round")
    p.add_argument("--skip-infer", action="store_true")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "deploy.json"))
    p.add_argument("--naive-server")
    p.add_argument("--port", type=int)
    args = p.parse_args()
    if args.naive_server:
        return naive_server(args.naive_server, args.port)
    os.environ.setdefault("OMP_WAIT_POLICY", ENV["OMP_WAIT_POLICY"])   # bench_infer's children inherit this process's
    run = Path(args.run)
    if not (run / "summary.json").is_file():
        print(f"training {run} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "tunewright.cli.main", "train", str(REPO / "configs" / "r8_lora.yaml"),
                        f"output_dir={run.parent}", f"run_name={run.name}", *SHORT], env=ENV, check=True, cwd=REPO)
    sys.path.insert(0, str(REPO / "src"))
    from tunewright.deploy.bench import bench_infer, table
    result = {"cpu": cpu_model(), "uptime_before": uptime(), "run": str(run), "train_overrides": SHORT,
              "python": platform.python_version()}
    if not args.skip_infer:
        from tunewright.deploy.onnx_export import export_onnx
        export = export_onnx(run, quantize="int8")   # always afresh: the table measures today's exporter
        result["export"] = {k: export[k] for k in ("exporter", "opset", "fused_ops", "export") if k in export}
        result["infer"] = bench_infer(run, threads=args.threads, test_subset=args.test_subset, repeats=args.repeats,
                                     n_batches=args.n_batches)
        print(table(result["infer"]))
    from tunewright.config import load_config
    from tunewright.data import read_data
    texts = [e.text for e in read_data(load_config(run / "config.yaml")).test][:500]
    result["http"] = http_test(run, texts, args.requests, args.clients, args.max_seconds, args.threads)
    result["uptime_after"] = uptime()
    print(json.dumps(result["http"], indent=2))
    out = Path(args.output)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}", file=sys.stderr)


def cpu_model() -> str:
    from tunewright.machine import describe
    return describe()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
