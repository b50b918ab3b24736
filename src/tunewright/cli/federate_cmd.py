"""tunewright federate CONFIG.yaml [--resume] [--overwrite] [key.sub=value ...]: federated fine-tuning on
Flower's simulation runtime (docs/federated.md); the deployment runtime runs the same app with `flwr run`."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("federate", help="Federated fine-tuning over simulated clients (docs/federated.md).")
    p.add_argument("config", help="YAML recipe with a federated: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as federated.aggregation=fedprox")
    p.add_argument("--resume", action="store_true", help="Continue after the last completed round (server_state/).")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing run folder.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..federated.driver import federate

    summary = federate(args.config, args.overrides, resume=args.resume, overwrite=args.overwrite)
    f = summary["federated"]
    print(f"test accuracy {summary['test'].get('accuracy', float('nan')):.4f} after {summary['rounds']} rounds; "
          f"{f['travelling_params']:,} parameters travel ({f['bytes_received_per_round'][-1] / 1e6:.2f} MB received "
          f"in the last round; full model {f['model_bytes'] / 1e6:.1f} MB); run folder {summary['run_dir']}")
    return 0
