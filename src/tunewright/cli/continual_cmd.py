"""tunewright continual CONFIG.yaml [key.sub=value ...] [--resume | --overwrite]: fine-tune a task sequence
with `continual.method`; print the accuracy matrix R, average accuracy, BWT and FWT. Checkpoints inside
and after every task go to runs/<run_name>/checkpoints/; --resume continues exactly."""
from __future__ import annotations

import shutil
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("continual", help="Continual learning over a task sequence (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a continual: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as continual.method=ewc")
    p.add_argument("--resume", action="store_true", help="Continue from the newest valid checkpoint of the run.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing run folder.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..continual.driver import load_tasks, run_sequence
    from ..run import claim_run_dir
    from ..tracking.phases import PhasedLog
    from ..training.phased import PhaseCheckpoints

    cfg = load_config(args.config, args.overrides)
    run_dir = claim_run_dir(cfg, args.resume, args.overwrite)
    loaded = load_tasks(cfg, Path(cfg.output_dir) / "feature_cache")   # bad settings or data fail before any write
    if args.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    phases = PhaseCheckpoints(run_dir / "checkpoints", args.resume)
    with PhasedLog(cfg, run_dir, resume_step=phases.resume_step) as log:   # closed on errors
        out = run_sequence(cfg, loaded=loaded, log=log, phases=phases)
        print(f"method {out['method']} ({out['scenario']}-incremental); R[i][j] = accuracy on task j after task i:")
        for row in out["R"]:
            print("  " + " ".join(f"{v:.3f}" for v in row))
        print(f"average accuracy {out['acc']:.4f}  backward transfer {out['bwt']:+.4f}  "
              f"forward transfer {out['fwt']:+.4f}")
        log.close(out)                            # summary.json
    return 0
