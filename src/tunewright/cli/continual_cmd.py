"""tunewright continual CONFIG.yaml [key.sub=value ...]: fine-tune a task sequence with
`continual.method`; print the accuracy matrix R, average accuracy, BWT and FWT."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("continual", help="Continual learning over a task sequence (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a continual: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as continual.method=ewc")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..continual.driver import load_tasks, run_sequence
    from ..tracking.phases import PhasedLog

    cfg = load_config(args.config, args.overrides)
    loaded = load_tasks(cfg, Path(cfg.output_dir) / "feature_cache")
    with PhasedLog(cfg) as log:                   # config.yaml, metrics.jsonl, `tracking:`; closed on errors
        out = run_sequence(cfg, loaded=loaded, log=log)
        print(f"method {out['method']} ({out['scenario']}-incremental); R[i][j] = accuracy on task j after task i:")
        for row in out["R"]:
            print("  " + " ".join(f"{v:.3f}" for v in row))
        print(f"average accuracy {out['acc']:.4f}  backward transfer {out['bwt']:+.4f}  "
              f"forward transfer {out['fwt']:+.4f}")
        log.close(out)                            # summary.json
    return 0
