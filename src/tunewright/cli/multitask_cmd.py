"""tunewright multitask CONFIG.yaml [key.sub=value ...]: train the `multitask.tasks` together and print
each task's accuracy, multi-task against single-task (the negative-transfer report)."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("multitask", help="Multi-task fine-tuning with a negative-transfer report (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a multitask: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as multitask.sampling=round_robin")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..multitask.driver import load_task_data, negative_transfer, train_multitask
    from ..tracking.phases import PhasedLog

    cfg = load_config(args.config, args.overrides)
    data = load_task_data(cfg, Path(cfg.output_dir) / "feature_cache")
    with PhasedLog(cfg) as log:                   # config.yaml, metrics.jsonl, `tracking:`; closed on errors
        if cfg.multitask.single_task_baseline:
            result = {"negative_transfer": negative_transfer(cfg, data, log)}
            print(f"{'task':<16} {'single':>8} {'multi':>8} {'delta':>8}")
            for r in result["negative_transfer"]:
                print(f"{r['task']:<16} {r['single']:8.4f} {r['multi']:8.4f} {r['delta']:+8.4f}")
        else:
            result = train_multitask(cfg, data, log=log)
            print(json.dumps(result, indent=2))
        log.close(result)                         # summary.json
    return 0
