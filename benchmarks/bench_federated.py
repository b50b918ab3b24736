"""Federated MiniLM + LoRA on Reuters-R8 over 10 clients: partitions x strategies, against centralized
fine-tuning on the pooled data with the same total number of optimizer steps.

    python benchmarks/bench_federated.py [--rounds 10] [--local-steps 4] [--out docs/federated_bench.md]

Partitions IID, Dirichlet(0.5), Dirichlet(0.1) x FedAvg, FedProx, FedPer (personalized heads). Writes a
markdown table (accuracy after each round, final accuracy, gap to centralized, clients' own global /
personalized accuracy, bytes per round, wall time), a plot (docs/federated_rounds.png) and the raw figures
(benchmarks/results/federated.json). Sized for 2 CPU cores: 3 of 10 clients per round, 4 local steps of
batch 16 at max_length 64, a stratified 300-row test subset (data.test_subset) scored after each round and
at the end by every run, centralized included; a 5% test slice per client.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

PARTITIONS = [("IID", ["federated.partitioner=iid"]),
              ("Dir(0.5)", ["federated.partitioner=dirichlet", "federated.alpha=0.5"]),
              ("Dir(0.1)", ["federated.partitioner=dirichlet", "federated.alpha=0.1"])]
STRATEGIES = [("FedAvg", ["federated.aggregation=fedavg"]),
              ("FedProx", ["federated.aggregation=fedprox"]),
              ("FedPer head", ["federated.aggregation=fedavg", "federated.personalize=head"])]
VARIANTS = [(f"{p} / {s}", po + so) for p, po in PARTITIONS for s, so in STRATEGIES]   # (name, overrides)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/federated_r8_lora.yaml")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--local-steps", type=int, default=4)
    ap.add_argument("--clients-per-round", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--test-subset", type=int, default=300,
                    help="stratified test rows (data.test_subset): scored after each round and at the end, by every run")
    ap.add_argument("--local-test-fraction", type=float, default=0.05, help="each client's own test slice")
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--central-only", action="store_true",
                    help="rerun only the centralized reference; the federated rows come from --json")
    ap.add_argument("--out", default="docs/federated_bench.md")
    ap.add_argument("--json", default="benchmarks/results/federated.json")
    ap.add_argument("--output-dir", default="runs/bench_federated")
    args = ap.parse_args()
    from tunewright.federated.driver import federate
    from tunewright.run import train

    shared = [f"output_dir={args.output_dir}", f"train.batch_size={args.batch_size}",
              f"data.max_length={args.max_length}", f"data.test_subset={args.test_subset}"]
    common = shared + [f"federated.rounds={args.rounds}", f"federated.local_steps={args.local_steps}",
                       f"federated.clients_per_round={args.clients_per_round}",
                       "federated.eval_subset=null",
                       f"federated.local_test_fraction={args.local_test_fraction}"]
    results, t_all = [], time.perf_counter()
    if args.central_only:
        previous = json.loads(Path(args.json).read_text())
        results, t_all = previous["variants"], t_all - previous["total_seconds"] + previous["centralized"]["seconds"]
    for name, over in VARIANTS:
        if args.central_only or (args.only and name not in args.only):
            continue
        print(f"=== {name} ({len(results) + 1}/{len(VARIANTS)}, {time.perf_counter() - t_all:.0f} s so far)",
              flush=True)
        t0 = time.perf_counter()
        s = federate(args.config, common + over + [f"run_name={name.replace(' ', '').replace('/', '_')}"],
                     overwrite=True)
        f = s["federated"]
        results.append({"name": name, "per_round": f["accuracy_per_round"], "final": s["test"]["accuracy"],
                        "clients": f["clients_accuracy"], "personal": f["clients_accuracy_personal"],
                        "sent": f["bytes_sent_per_round"][-1], "received": f["bytes_received_per_round"][-1],
                        "model": f["model_bytes"], "travelling_params": f["travelling_params"],
                        "seconds": time.perf_counter() - t0})
        print(json.dumps(results[-1]), flush=True)
    # Centralized reference: the pooled train split, the same total steps (rounds x clients per round x local steps).
    steps = args.rounds * args.clients_per_round * args.local_steps
    print(f"=== centralized, {steps} steps", flush=True)
    t0 = time.perf_counter()
    # No head warm start: `train` would first fit the head by L-BFGS on all pooled features (minutes, and far more
    # than the same steps); federated clients never do, so the reference must not either.
    ref = train(args.config, shared + ["run_name=centralized", f"train.max_steps={steps}", "train.schedule=constant",
                                       "train.progress=plain", "strategy_options.warm_start_head=false"],
                overwrite=True)
    central = {"final": ref.test["accuracy"], "seconds": time.perf_counter() - t0, "steps": steps}
    write(args, results, central, time.perf_counter() - t_all)


def write(args, results, central, total_seconds) -> None:
    import datetime
    import sys
    from tunewright.machine import describe
    model = describe()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    import torch
    command = "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python " + " ".join(
        a for a in sys.argv if a != "--central-only")
    if args.central_only:
        command += "\n    (centralized row rerun alone: the same command with --central-only)"
    lines = [f"    {command}", "",
             f"{datetime.date.today().isoformat()}; CPU: {model} "
             f"(1/5/15-minute load at the end, this job included: {uptime.split('load average:')[-1].strip()}); "
             f"torch {torch.__version__}, "
             f"Python {platform.python_version()}; whole table {total_seconds / 60:.1f} min.", "",
             f"Budget per federated run: {args.rounds} rounds x {args.clients_per_round} of 10 clients x "
             f"{args.local_steps} local steps = {central['steps']} optimizer steps, batch {args.batch_size}, "
             f"max_length {args.max_length}; the centralized run takes the same {central['steps']} steps on the pooled "
             f"train split. Test accuracy is on a stratified {args.test_subset}-row subset of the test split "
             f"(data.test_subset), the same rows for every run; clients' own slices are "
             f"{args.local_test_fraction:.0%} of each client's rows.", "",
             "| variant | test acc. after each round | final test acc. | vs centralized | clients' own slices "
             f"(global / personalized) | MB sent / received "
             f"per round | full model MB | wall s |",
             "|---|---|---:|---:|---|---:|---:|---:|"]
    for r in results:
        per = " ".join(f"{a:.3f}" for a in r["per_round"])
        own = f"{r['clients']:.3f}" + (f" / {r['personal']:.3f}" if r["personal"] is not None else "")
        lines.append(f"| {r['name']} | {per} | {r['final']:.4f} | {100 * (r['final'] - central['final']):+.1f} pt | "
                     f"{own} | {r['sent'] / 1e6:.2f} / {r['received'] / 1e6:.2f} | {r['model'] / 1e6:.1f} | "
                     f"{r['seconds']:.0f} |")
    lines.append(f"| centralized, pooled data, {central['steps']} steps | | {central['final']:.4f} | | | | | "
                 f"{central['seconds']:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": command, "cpu": model, "uptime": uptime,
                                           "date": datetime.date.today().isoformat(), "args": vars(args),
                                           "variants": results, "centralized": central,
                                           "total_seconds": total_seconds}, indent=1))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in results:
            ax.plot(range(1, len(r["per_round"]) + 1), r["per_round"], marker="o", label=r["name"])
        ax.axhline(central["final"], color="k", ls="--", label="centralized (same steps)")
        ax.set_xlabel("round"), ax.set_ylabel("test accuracy"), ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(Path(args.out).with_name("federated_rounds.png"), dpi=100)
    except Exception as e:  # the table is the result; the plot is a view of it
        print(f"note: no plot ({e})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
