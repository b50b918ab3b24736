"""tunewright meta-train CONFIG.yaml [key.sub=value ...]: MAML / FOMAML / ANIL on N-way K-shot
episodes; writes runs/<run_name>/ (meta_model.safetensors, config.yaml, metrics.jsonl, summary.json)
for `tunewright adapt`."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("meta-train", help="Meta-train with MAML, first-order MAML or ANIL (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a meta: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as meta.algorithm=anil meta.k_shot=1")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..meta.driver import meta_train

    cfg = load_config(args.config, args.overrides)
    run_dir = Path(cfg.output_dir) / cfg.run_name
    s = meta_train(cfg, run_dir)
    print(f"{s['algorithm']} {s['n_way']}-way {s['k_shot']}-shot: meta-test accuracy {s['test_acc']:.4f} "
          f"+/- {s['ci95']:.4f} (95% CI, {s['test_episodes']} episodes of classes {s['test_classes']})")
    print(f"run folder: {run_dir}  (next: tunewright adapt {run_dir} --shots {s['k_shot']})")
    return 0
