"""tunewright multitask CONFIG.yaml [key.sub=value ...] [--resume | --overwrite]: train the
`multitask.tasks` together and print each task's accuracy, multi-task against single-task (the
negative-transfer report). Every training checkpoints to runs/<run_name>/checkpoints/; --resume
continues exactly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("multitask", help="Multi-task fine-tuning with a negative-transfer report (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a multitask: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as multitask.sampling=round_robin")
    p.add_argument("--resume", action="store_true", help="Continue from the newest valid checkpoint of the run.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing run folder.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..multitask.driver import load_task_data, negative_transfer, run_phases
    from ..run import claim_run_dir
    from ..tracking.phases import PhasedLog
    from ..training.phased import PhaseCheckpoints

    cfg = load_config(args.config, args.overrides)
    run_dir = claim_run_dir(cfg, args.resume, args.overwrite)
    data = load_task_data(cfg, Path(cfg.output_dir) / "feature_cache")   # bad data fail before any write
    if args.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    phases = PhaseCheckpoints(run_dir / "checkpoints", args.resume)
    with PhasedLog(cfg, run_dir, resume_step=phases.resume_step) as log:   # closed on errors
        if cfg.multitask.single_task_baseline:
            result = {"negative_transfer": negative_transfer(cfg, data, log, phases)}
            print(f"{'task':<16} {'single':>8} {'multi':>8} {'delta':>8}")
            for r in result["negative_transfer"]:
                print(f"{r['task']:<16} {r['single']:8.4f} {r['multi']:8.4f} {r['delta']:+8.4f}")
        else:
            result = run_phases(cfg, data, [None], log, phases)[0]
            print(json.dumps(result, indent=2))
        log.close(result)                         # summary.json
    return 0
