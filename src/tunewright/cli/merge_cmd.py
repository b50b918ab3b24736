"""tunewright merge RUN_DIR [--output DIR]

Folds a run's adapter into the base weights and writes the merged model as a run folder of its
own (config.yaml with method: none, model/model.safetensors), so eval, predict and generate use it
like any run. Prints the drift report first: the largest absolute logit difference, merged
against unmerged, on a batch of the run's validation data.
"""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("merge", help="Merge a run's adapter into the base weights (with a drift report).")
    p.add_argument("run_dir")
    p.add_argument("--output", help="Where to write the merged run (default: RUN_DIR/merged).")
    p.add_argument("--batch-size", type=int, default=16, help="Examples in the drift report's batch.")
    p.set_defaults(func=run)


def drift_batch(cfg, preprocessor, n: int) -> dict:
    """The first n examples of the run's validation split (else test, else train), as one batch."""
    from ..data import build_data, read_data
    bundle = build_data(read_data(cfg), preprocessor, cfg)
    ds = bundle.val or bundle.test or bundle.train
    return bundle.collate([ds[i] for i in range(min(n, len(ds)))])


def run(args) -> int:
    from ..config import dump_yaml, to_dict
    from ..config.load import config_from_dict
    from ..errors import MethodError
    from ..models import save_run_model
    from ..peft import can_merge, format_report, merge_report, merged_model, method_spec
    from ..run import load_run

    cfg, model, preprocessor, meta = load_run(args.run_dir)
    if not method_spec(cfg.method).freezes_base:
        raise MethodError(f"{args.run_dir} trained no adapter (method: none): there is nothing to merge.")
    if not can_merge(model):
        raise MethodError(f"method: {cfg.method} cannot be merged into the weights (prompt and prefix tuning add "
                          f"virtual tokens; bottleneck adapters are non-linear).")
    report = merge_report(model, drift_batch(cfg, preprocessor, args.batch_size))
    print(format_report(report))
    merged_model(model)
    out = Path(args.output) if args.output else Path(args.run_dir) / "merged"
    out.mkdir(parents=True, exist_ok=True)
    plain = config_from_dict({**to_dict(cfg), "method": "none", "run_name": out.name, "output_dir": str(out.parent)})
    (out / "config.yaml").write_text(dump_yaml(plain))
    save_run_model(model, out / "model", to_dict(plain), meta.get("label_names"), preprocessor)
    print(f"written: {out} (method: none; evaluate it with `tunewright eval {out}`)")
    return 0
