"""tunewright domain-adapt CONFIG.yaml [key.sub=value ...]: train on the labeled source with
`domain.method` aligning to the unlabeled target; print target accuracy and the domain-shift score."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("domain-adapt", help="Unsupervised domain adaptation: DANN, CORAL, MMD (docs/beyond.md).")
    p.add_argument("config", help="YAML recipe with a domain: section.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides such as domain.method=coral")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..domain.driver import adapt_domain
    from ..tracking.phases import PhasedLog

    cfg = load_config(args.config, args.overrides)
    with PhasedLog(cfg) as log:                   # config.yaml, metrics.jsonl, `tracking:`; closed on errors
        out = adapt_domain(cfg, log=log)
        print(json.dumps(out, indent=2))
        log.close(out)                            # summary.json
    return 0
