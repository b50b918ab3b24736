"""tunewright meta-train CONFIG.yaml [key.sub=value ...] [--resume | --overwrite]: MAML / FOMAML / ANIL /
ProtoNet on N-way K-shot episodes of images or text; writes runs/<run_name>/ (meta_model.safetensors,
checkpoints/, config.yaml, metrics.jsonl, summary.json) for `tunewright adapt`."""
from __future__ import annotations

import shutil
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("meta-train", help="Meta-train with MAML, first-order MAML, ANIL or ProtoNet (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a meta: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as meta.algorithm=anil meta.k_shot=1")
    p.add_argument("--resume", action="store_true", help="Continue from the newest valid checkpoint of the run.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing run folder.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..meta.driver import meta_train          # declares meta.algorithm before the config is checked
    from ..run import claim_run_dir

    cfg = load_config(args.config, args.overrides)
    run_dir = claim_run_dir(cfg, args.resume, args.overwrite)
    if args.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    s = meta_train(cfg, run_dir, resume=args.resume, cache_dir=Path(cfg.output_dir) / "feature_cache")
    print(f"{s['algorithm']} {s['n_way']}-way {s['k_shot']}-shot: meta-test accuracy {s['test_acc']:.4f} "
          f"+/- {s['ci95']:.4f} (95% CI, {s['test_episodes']} episodes of classes {s['test_classes']})")
    print(f"run folder: {run_dir}  (next: tunewright adapt {run_dir} --shots {s['k_shot']})")
    return 0
