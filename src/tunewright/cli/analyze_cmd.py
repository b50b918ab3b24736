"""tunewright analyze RUN_DIR [--max-examples N] [--no-robustness]"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="What fine-tuning changed: CKA per layer, layer contribution, weight "
                       "change, LoRA spectra, PCA of features, robustness. Writes RUN_DIR/analysis.json.")
    p.add_argument("run_dir")
    p.add_argument("--max-examples", type=int, default=256, help="Test examples used (a seeded subset).")
    p.add_argument("--no-robustness", action="store_true", help="Skip the input-corruption sweep.")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis.analyze import analyze_run
    from pathlib import Path

    a = analyze_run(args.run_dir, args.max_examples, robust=not args.no_robustness)
    print(f"accuracy on {a['examples']} test examples: {a['accuracy']:.4f}")
    for key in ("cka", "contribution", "weight_change"):
        if a.get(key):
            print(f"{key}: " + ", ".join(f"{k} {v:.3f}" for k, v in a[key].items()))
    for kind, accs in (a.get("robustness") or {}).items():
        print(f"robustness {kind}: " + " -> ".join(f"{v:.3f}" for v in accs))
    for n in a.get("notes", []):
        print(f"note: {n}")
    print(Path(args.run_dir) / "analysis.json")
    return 0
