"""Federated MiniLM + LoRA on Reuters-R8 over 10 clients: partitions x strategies, against centralized
fine-tuning on the pooled data with the same total number of optimizer steps.

    python benchmarks/bench_federated.py [--rounds 5] [--local-steps 8] [--out docs/federated_bench.md]

Writes a markdown table (accuracy after each round, final accuracy, bytes per round, wall time) and a plot
(docs/federated_rounds.png). Sized for 2 CPU cores: 3 clients per round, short local work, max_length 64,
a stratified 400-row test subset scored after each round (the final accuracy is on the full test split).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

VARIANTS = [  # (name, overrides)
    ("IID / FedAvg", ["federated.partitioner=iid", "federated.aggregation=fedavg"]),
    ("Dir(0.5) / FedAvg", ["federated.partitioner=dirichlet", "federated.alpha=0.5", "federated.aggregation=fedavg"]),
    ("Dir(0.5) / FedProx", ["federated.partitioner=dirichlet", "federated.alpha=0.5", "federated.aggregation=fedprox"]),
    ("Dir(0.5) / FedPer head", ["federated.partitioner=dirichlet", "federated.alpha=0.5", "federated.personalize=head"]),
    ("Dir(0.1) / FedAvg", ["federated.partitioner=dirichlet", "federated.alpha=0.1", "federated.aggregation=fedavg"]),
    ("Dir(0.1) / FedProx", ["federated.partitioner=dirichlet", "federated.alpha=0.1", "federated.aggregation=fedprox"]),
    ("Dir(0.1) / FedPer head", ["federated.partitioner=dirichlet", "federated.alpha=0.1", "federated.personalize=head"]),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/federated_r8_lora.yaml")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--local-steps", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--out", default="docs/federated_bench.md")
    ap.add_argument("--output-dir", default="runs/bench_federated")
    args = ap.parse_args()
    from tunewright.federated.driver import federate
    from tunewright.run import train

    common = [f"output_dir={args.output_dir}", f"federated.rounds={args.rounds}",
              f"federated.local_steps={args.local_steps}"]
    results = []
    for name, over in VARIANTS:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        s = federate(args.config, common + over + [f"run_name={name.replace(' ', '').replace('/', '_')}"],
                     overwrite=True)
        f = s["federated"]
        results.append({"name": name, "per_round": f["accuracy_per_round"], "final": s["test"]["accuracy"],
                        "clients": f["clients_accuracy"], "personal": f["clients_accuracy_personal"],
                        "sent": f["bytes_sent_per_round"][-1], "received": f["bytes_received_per_round"][-1],
                        "model": f["model_bytes"], "seconds": time.perf_counter() - t0})
        print(json.dumps(results[-1]), flush=True)
    # Centralized reference: the pooled train split, the same total steps (rounds x clients per round x local steps).
    from tunewright.config import load_config
    cfg = load_config(args.config)
    steps = args.rounds * cfg.federated.clients_per_round * args.local_steps
    t0 = time.perf_counter()
    ref = train(args.config, [f"output_dir={args.output_dir}", "run_name=centralized", f"train.max_steps={steps}",
                              "train.schedule=constant"], overwrite=True)
    central = {"final": ref.test["accuracy"], "seconds": time.perf_counter() - t0, "steps": steps}
    write(args, results, central)


def write(args, results, central) -> None:
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    load = os.getloadavg()
    lines = [f"    python benchmarks/bench_federated.py --rounds {args.rounds} --local-steps {args.local_steps}", "",
             f"CPU: {model}, {os.cpu_count()} cores; load average at the end {load[0]:.2f} / {load[1]:.2f} / "
             f"{load[2]:.2f}; Python {platform.python_version()}.", "",
             "| variant | test acc. per round (400-row subset) | final test acc. | clients' own slices "
             "(global / personalized) | MB sent / received per round | full model MB | wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        per = " ".join(f"{a:.3f}" for a in r["per_round"])
        own = f"{r['clients']:.3f}" + (f" / {r['personal']:.3f}" if r["personal"] is not None else "")
        lines.append(f"| {r['name']} | {per} | {r['final']:.4f} | {own} | {r['sent'] / 1e6:.2f} / "
                     f"{r['received'] / 1e6:.2f} | {r['model'] / 1e6:.1f} | {r['seconds']:.0f} |")
    lines.append(f"| centralized, pooled data, {central['steps']} steps | | {central['final']:.4f} | | | | "
                 f"{central['seconds']:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
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
