"""tunewright advise --model M --data D [--budget-minutes T] [--reference R] [key.sub=value ...]"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("advise", help="Recommend a strategy or method, with reasons, from measured evidence.")
    p.add_argument("--model", default="minilm", help="model.name (packaged short name, folder or hub id).")
    p.add_argument("--data", required=True, help="data.train (file, folder or packaged dataset).")
    p.add_argument("--budget-minutes", type=float, help="Training time you can afford on this machine.")
    p.add_argument("--reference", help="Reference dataset for the domain-shift score (default: by modality).")
    p.add_argument("--json", help="Also write the advice and its evidence to this JSON file.")
    p.add_argument("overrides", nargs="*", help="Dotted overrides, e.g. data.train_subset=800 train.epochs=1.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..advise import advise
    from ..config.load import config_from_dict

    base = {"model": {"name": args.model}, "data": {"train": args.data}}
    from ..assets.datasets import DATASETS
    if args.data in DATASETS and DATASETS[args.data].modality == "image":
        base["task"] = "image_classification"   # a packaged image set implies the task (task=... still wins)
    cfg = config_from_dict(base, args.overrides)
    a = advise(cfg, args.budget_minutes, args.reference)
    print(f"recommendation: {a.recommendation}")
    for r in a.reasons:
        print(f"  - {r}")
    print(f"alternatives: {', '.join(a.alternatives)}")
    print("estimated minutes: " + ", ".join(f"{k} {v:g}" for k, v in a.estimates_minutes.items()))
    for n in a.notes:
        print(f"note: {n}")
    if args.json:
        with open(args.json, "w") as f:
            f.write(a.to_json())
    return 0
