"""`train(config) -> RunResult`: data -> model -> strategy/method -> fit -> evaluate -> save.

Order matters: all data is read and validated before any model loads, so bad input fails in
seconds, not after a 30 s model load. The run folder is:

    runs/<run_name>/config.yaml      fully resolved config
                    metrics.jsonl    one JSON row per logged step / evaluation
                    summary.json     test and val metrics, params, time, memory, best epoch
                    checkpoints/     resumable, hashed (training/checkpoint.py)
                    model/           the best weights (safetensors) and what reloads them
"""
from __future__ import annotations

import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import progress
from .config import Config, dump_yaml, eval_batch_size, load_config, to_dict
from .config.load import config_from_dict
from .config.schema import uses_method
from .config.secrets import secret_keys
from .errors import ConfigError, TunewrightError
from .evaluate import evaluate_dataset
from .huge_pages import status as huge_pages_status
from .machine import describe as describe_machine
from .optim import build_optimizer, build_scheduler, param_groups, schedule_options
from .run_lock import RunLock
from .tracking.run_log import finish as finish_logging
from .tracking.run_log import exit_status, logging_callbacks
from .training.callbacks import BestModelSaver, CallbackList, Checkpointer, EarlyStopping, MallocTrim
from .strategies.frozen_mode import recalibrate_bn
from .training.loop import TrainState, fit, monitored, step_counts
from .training.losses import loss_for
from .training.precision import resolve_device, resolve_precision


@dataclass
class RunResult:
    run_dir: Path
    config: Config
    summary: dict
    model: torch.nn.Module | None = None

    @property
    def test(self) -> dict:
        return self.summary["test"]

    @property
    def val(self) -> dict:
        return self.summary["val"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def check_options(cfg: Config) -> Config:
    """The checks the config layer cannot make itself (config sits below the modules that hold these
    rules): strategy, schedule and L2-SP options (strategies/options.py) and augmentation (data/augment.py).
    Each error names the key, the value given and what is allowed."""
    from . import peft, strategies  # noqa: F401  (importing them declares the allowed `method:`/`strategy:` values)
    from .config.declared import check
    from .data.augment import check_augmentation
    from .strategies.options import check_options as check_strategy_options
    check("method", cfg.method)       # again here: a Config loaded before peft was imported was not checked
    check("strategy", cfg.strategy)
    check_strategy_options(cfg)
    check_augmentation(cfg)
    return cfg


def as_config(config, overrides=None, **kwargs) -> Config:
    """A YAML path, dict or Config (+ dotted overrides, + keyword sections) -> a Config checked in full."""
    if isinstance(config, Config):
        if overrides or kwargs:
            return check_options(config_from_dict({**to_dict(config), **kwargs}, overrides))
        return check_options(config)
    if isinstance(config, dict):
        return check_options(config_from_dict({**config, **kwargs}, overrides))
    return check_options(load_config(config, overrides, **kwargs))


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue  # tied weights count once
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def class_weights(counts, num_labels: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1 (so the LR means the same with and without)."""
    c = np.array([max(counts[i], 1) for i in range(num_labels)], float)  # a class absent from train counts as 1
    w = c.sum() / (num_labels * c)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def prepare(cfg: Config):
    """Everything up to the training loop; shared by train, lr-find and compare."""
    from .data import build_data, read_data
    from .data.augment import augment_bundle
    from .models import load_model
    from .training.rng import seed_everything

    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    print("loading data ...", file=sys.stderr, flush=True)   # start-up takes seconds: say what it is doing
    raw = read_data(cfg)                       # validates every split before a model loads
    num_labels = None
    if cfg.task == "regression":
        num_labels = 1
    elif raw.label_names is not None:
        num_labels = len(raw.label_names)
    print(f"loading model {cfg.model.name} ...", file=sys.stderr, flush=True)
    model, preprocessor = load_model(cfg, num_labels)
    bundle = augment_bundle(build_data(raw, preprocessor, cfg), preprocessor, cfg)  # train split only
    return raw, model, preprocessor, bundle


def build_optimization(model: torch.nn.Module, cfg: Config, plans: list, n_train: int, world: int = 1):
    """(optimizer, scheduler, total_steps) for `model` as the plans say; shared by train, lr-plot, lr-find.
    `world`: the processes training together (a global micro-batch is batch_size x world rows).

    Every parameter that trains at any point is in the optimizer from step 0 (gradual unfreezing
    toggles requires_grad only), one param group per (layer group, LR multiple, decay).
    """
    lr_scale = {k: v for p in plans for k, v in p.lr_scale.items()}
    group_of = next((p.group_of for p in plans if p.group_of is not None), None)
    groups = param_groups(model, cfg.train.lr, cfg.train.weight_decay, lr_scale, group_of)
    optimizer = build_optimizer(groups, cfg.train.optimizer, cfg.train.lr, cfg.train.momentum)
    _, _, total_steps = step_counts(n_train, cfg.train, world)   # the same count fit() runs
    scheduler = build_scheduler(optimizer, cfg.train.schedule, total_steps, cfg.train.warmup_ratio,
                                **schedule_options(cfg.train))
    return optimizer, scheduler, total_steps


@dataclass
class Assembly:
    """A run put together up to the loop: what `train`, `lr-find` and `lr-plot` share."""
    model: torch.nn.Module
    preprocessor: object
    bundle: object
    plans: list
    optimizer: torch.optim.Optimizer
    scheduler: object
    total_steps: int
    device: torch.device


def assemble(cfg: Config, world: int = 1) -> Assembly:
    """Data, model, plans (strategy, then method), optimizer and scheduler, without training. Bad data or a
    missing model fail in `prepare`, before anything is written. `world`: processes training together."""
    from .peft import apply_method
    from .strategies import plan_strategy

    device = resolve_device(cfg.train.device)
    _, model, preprocessor, bundle = prepare(cfg)
    plans = [plan_strategy(model, cfg)]
    plans.append(apply_method(model, cfg, plans[0]))  # the method keeps what the strategy chose (docs/peft.md)
    model.to(device)
    optimizer, scheduler, total_steps = build_optimization(model, cfg, plans, len(bundle.train), world)
    return Assembly(model, preprocessor, bundle, plans, optimizer, scheduler, total_steps, device)


def fit_data(asm: Assembly, cfg: Config):
    """What `fit()` trains on: the bundle, or what a plan's `prepare` swaps in (the head warm start, a
    feature cache); returns it and the seconds that took, which count as training time too."""
    from .training.plan import FitData

    data = FitData.of(asm.model, asm.bundle)
    t0 = time.perf_counter()
    for p in asm.plans:
        if p.prepare is not None:
            data = p.prepare(data, cfg, asm.device)
    return data, time.perf_counter() - t0


def start_state(asm: Assembly) -> None:
    """Make the model train what it trains at step 0 of `fit()` (a gradual-unfreezing plan starts with the
    head alone), for tools that step the optimizer outside `fit()` (lr-find)."""
    for p in asm.plans:
        if p.unfreezing is not None:
            p.unfreezing.start()


def claim_run_dir(cfg: Config, resume: bool, overwrite: bool) -> Path:
    """The run folder. One with results or checkpoints is never replaced silently; one left by a run that
    failed before training (bad data, missing model) holds nothing to lose and is reused."""
    run_dir = Path(cfg.output_dir) / cfg.run_name
    has_results = (run_dir / "summary.json").exists() or any((run_dir / "checkpoints").rglob("step-*"))
    if has_results and not resume and not overwrite:
        raise TunewrightError(f"{run_dir} already exists. Use --resume to continue it, --overwrite to start "
                              f"over, or another run_name.")
    return run_dir


def run_notes(asm: Assembly, cfg: Config) -> tuple[list[str], str]:
    """What the run tells the user before it trains (printed, and kept in the summary), and the huge-pages state."""
    notes = list(asm.bundle.notes) + [n for p in asm.plans for n in p.notes]
    hidden = secret_keys(to_dict(cfg))
    if hidden:
        notes.append(f"{', '.join(hidden)} look(s) like a secret: written as <redacted> in config.yaml, the model's "
                     f"JSON and the trackers. Give it as \"${{env:NAME}}\" so that the saved run can rebuild itself")
    if uses_method(cfg) and cfg.model.attention_dropout == "auto" and hasattr(asm.model.backbone, "config"):
        notes.append(f"model.attention_dropout auto: attention dropout is off while {cfg.method} trains (the fused "
                     f"attention kernel runs); set model.attention_dropout to a number to keep it")
    huge_pages = huge_pages_status()
    if asm.device.type == "cpu" and huge_pages.startswith("off (torch"):
        notes.append(f"huge pages {huge_pages}: CPU steps run slower and use more memory")
    return notes, huge_pages


def loss_class_weights(cfg: Config, bundle) -> torch.Tensor | None:
    """The loss's class weights under `data.imbalance: weight`, else None."""
    if cfg.data.imbalance == "weight" and bundle.num_labels and cfg.task in ("classification", "image_classification"):
        return class_weights(bundle.class_counts, bundle.num_labels)
    return None


def loss_and_sampling(cfg: Config, bundle):
    """The loss (class-weighted under `data.imbalance: weight`) and per-example sampling weights
    (`data.imbalance: sample`), or None."""
    weights = loss_class_weights(cfg, bundle)
    sample_weights = None
    if cfg.data.imbalance == "sample" and bundle.num_labels:
        cw = class_weights(bundle.class_counts, bundle.num_labels).numpy()
        sample_weights = [float(cw[int(ex["labels"])]) for ex in bundle.train]
    return loss_for(cfg.task, cfg.train.label_smoothing, weights), sample_weights


def train(config, overrides: list[str] | None = None, *, resume: bool = False, overwrite: bool = False,
          force: bool = False, keep_model: bool = False, callbacks: list | None = None, **kwargs) -> RunResult:
    """Fine-tune as the config says and return the run folder and its summary.

    `config` is a Config, a dict, or a YAML path; `overrides` are `key.sub=value` strings; extra
    `callbacks` (plain objects with `on_*` methods, see training/events.py) join the run's own.
    `force`: resume even when settings that change the training differ from the checkpoint's.

    Started by torchrun (its RANK/WORLD_SIZE are set), every worker runs this same function: each
    trains on its slice of every global batch (distributed/), rank 0 alone writes the run folder,
    and the others wait for it at the end.
    """
    from .distributed import env as dist_env
    from .distributed.collective import barrier

    cfg = as_config(config, overrides, **kwargs)
    world = dist_env.start(cfg, cfg.train.device)          # one process: nothing happens
    if world.restarts:    # torchrun restarted the workers after a failure: go on from the newest checkpoint
        resume, overwrite = True, False
    # Rank 0 alone writes the run folder, so it alone holds its lock: a second run into it is refused.
    lock = RunLock(Path(cfg.output_dir) / cfg.run_name) if world.is_main else None
    try:
        if lock is not None:
            lock.acquire()
        with progress.use(cfg.train.progress):     # tokenizing, warm start, cache, evaluation show it too
            result = _train(cfg, world, resume=resume, overwrite=overwrite, force=force, keep_model=keep_model,
                            callbacks=callbacks)
        barrier()                                           # the others wait until rank 0 has written
        return result
    finally:
        if lock is not None:
            lock.release()
        if world.world > 1:
            dist_env.stop()


def _train(cfg: Config, world, *, resume: bool, overwrite: bool, force: bool, keep_model: bool,
           callbacks: list | None) -> RunResult:
    from .data.augment import batch_augmentations
    from .distributed.choose import parallel_for
    from .distributed.collective import on_rank0, shared_map
    from .distributed.evaluate import evaluate_sharded
    from .models import save_run_model
    from .peft import checkpoint_state, restore_saved, save_options
    from .training.checkpoint import latest_valid, load_checkpoint, read_record, saved_step
    from .training.resume_check import check_resume, run_record
    from .training.spike import spike_callbacks

    if cfg.train.spike_factor is not None and world.world > 1:
        raise ConfigError("train.spike_factor: the loss-spike rollback runs in one process only for now (each rank "
                          "sees only its own share of the loss); leave it null under torchrun.")
    main = world.is_main           # only rank 0 writes: the run folder, logs, trackers, checkpoints, model
    run_dir = on_rank0(lambda: claim_run_dir(cfg, resume, overwrite))
    ckpt_dir = run_dir / "checkpoints"
    record = run_record(cfg, world.world)

    def choose_checkpoint() -> str | None:
        found = latest_valid(ckpt_dir)
        if found is None:
            print(f"note: no valid checkpoint in {ckpt_dir}; starting from the beginning")
            return None
        check_resume(read_record(found), record, found, force, log=lambda m: print(m, file=sys.stderr, flush=True))
        return found.name

    # Before anything is written: a refused resume leaves the run folder as it was.
    state, resume_from, resume_step = None, None, None
    if resume:
        name = on_rank0(choose_checkpoint)
        if name is not None:
            resume_from = ckpt_dir / name
            if not resume_from.is_dir():
                raise TunewrightError(f"rank {world.rank} cannot see {resume_from}, which rank 0 resumes from: "
                                      f"on several nodes, output_dir must be on a shared filesystem")
            resume_step = saved_step(resume_from)
    asm = assemble(cfg, world.world)           # bad data or a missing model fail here, before any write
    model, bundle, plans, device = asm.model, asm.bundle, asm.plans, asm.device
    optimizer, scheduler = asm.optimizer, asm.scheduler
    precision = resolve_precision(cfg.train.precision, device, cfg.train.cudnn_attention)

    def make_run_dir() -> None:
        if run_dir.exists() and not resume:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    on_rank0(make_run_dir)
    data, prepare_seconds = fit_data(asm, cfg)  # a feature cache is computed once, shared by the ranks
    notes, huge_pages = run_notes(asm, cfg)
    for note in notes if main else ():
        print(f"note: {note}", file=sys.stderr, flush=True)
    loss_fn, sample_weights = loss_and_sampling(cfg, bundle)
    eval_bs = eval_batch_size(cfg.train)

    # fit()'s `parallel` (None: one process; DDP; FSDP), and the calls that write, restore and evaluate the
    # model, which under FSDP gather whole tensors first (distributed/choose.py)
    parallel, sharding = parallel_for(world, cfg, data, model, loss_fn, loss_class_weights(cfg, bundle), device)

    def evaluate_split(split: str) -> dict:
        m, ds, collate = data.evals[split]     # the TaskModel, or a head over cached features
        # Several ranks: each runs every W-th evaluation batch; the metrics are those of all rows.
        with sharding.evaluating(m):
            return evaluate_sharded(m, ds, collate, cfg.task, bundle.num_labels, eval_bs, precision,
                                    label=f"evaluate {split}")

    recal = max((p.bn_recalibrate_batches for p in plans), default=0)

    def evaluate() -> dict:
        if recal:      # BatchNorm statistics at the current weights (strategies/frozen_mode.py)
            recalibrate_bn(data.model, data.train, data.collate, device, cfg.train.batch_size, recal,
                           precision.autocast)
        return {"val": evaluate_split("val")}

    # Always the whole TaskModel, also when fit() trains a head over a feature cache.
    # PEFT runs: only the adapter and the head (tunewright.peft.save_options).
    def write_model(m) -> None:
        save_run_model(m, run_dir / "model", to_dict(cfg), bundle.label_names, asm.preprocessor,
                       **save_options(m, cfg))

    def save_best(_trained=None) -> None:
        with sharding.gathered(model) as (whole, _):   # FSDP: every rank gathers, rank 0 writes
            if whole is not None:
                write_model(whole)

    trackers, logging = logging_callbacks(cfg, run_dir, resume_step) if main else ([], [])
    cbs = CallbackList()
    writes = main or sharding.shards   # under FSDP every rank takes part in the gathers before a write
    cbs.callbacks += [*logging, *([BestModelSaver(save_best)] if writes else [])]
    if cfg.train.early_stopping_patience:
        cbs.callbacks.append(EarlyStopping(cfg.train.early_stopping_patience))
    for p in plans:
        cbs.callbacks += p.callbacks
    cbs.callbacks += batch_augmentations(cfg, bundle.num_labels)   # MixUp / CutMix
    trim_every = MallocTrim.resolve_every(cfg.train.malloc_trim_every, device)
    if trim_every:
        cbs.callbacks.append(MallocTrim(trim_every, quiet=cfg.train.malloc_trim_every is None))
    cbs.callbacks += list(callbacks or [])
    if main:
        cbs.callbacks += spike_callbacks(cfg.train, ckpt_dir, trackers)   # train.spike_factor; none by default
    if writes:
        cbs.callbacks.append(Checkpointer(ckpt_dir, cfg.checkpoint.every_steps, cfg.checkpoint.keep_last, cbs,
                                          model_state=checkpoint_state(model, cfg),  # PEFT: no frozen base
                                          record=record, gather=sharding.gathered))

    if resume_from is not None:
        trainer_state = load_checkpoint(resume_from, model=data.model, optimizer=optimizer, scheduler=scheduler)
        state = TrainState.from_dict(trainer_state["loop"])
        cbs.load_state_dict(trainer_state.get("callbacks", {}))
        if main:
            print(f"resumed from {resume_from} (step {state.step}, epoch {state.epoch}, batch {state.batch_in_epoch})")

    if sharding.shards:
        sharding.shard(model, optimizer)       # after the resume load: checkpoints hold whole tensors

    def final_summary(state) -> dict:
        """The best weights' metrics on val and test, and the run's figures (summary.json)."""
        # Final numbers come from the best weights, the ones `model/` holds; rank 0 reads them and hands them on.
        def restore_best(m) -> None:
            if not restore_saved(m, run_dir / "model"):  # the full state dict, or the adapter + head
                write_model(m)  # no evaluation improved (e.g. NaN metric): keep and save the last weights
        sharding.restore(model, restore_best)    # rank 0 reads, every rank gets the weights
        summary = {
            "val": evaluate_split("val"),
            "test": evaluate_split("test"),
        }
        trainable, total = count_params(model)
        metric, mode = monitored(cfg.task, cfg.train.metric)
        t = cfg.train
        summary.update({
            "trainable_params": trainable, "total_params": total, "trainable_share": trainable / max(total, 1),
            "train_seconds": round(state.train_seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "best_epoch": state.best_epoch, "best_step": state.best_step, "monitor": {"metric": metric, "mode": mode},
            "steps": state.step, "epochs_run": round(state.epoch_float if state.batch_in_epoch else state.epoch, 3),
            "samples_per_s": round(state.samples_seen / max(state.train_seconds, 1e-9), 2),
            # the global batch of one optimizer step: batch_size rows per rank x world_size ranks x grad_accum
            "batch_size": t.batch_size, "world_size": world.world, "grad_accum": t.grad_accum,
            "global_batch": t.batch_size * world.world * t.grad_accum,
            "peak_rss_mb_per_rank": shared_map(lambda _: round(peak_rss_mb(), 1), range(world.world)),
            "stop_reason": state.stop_reason, "nonfinite_steps_skipped": state.nonfinite_total,
            "cache_seconds": round(data.cache_seconds, 2), "prepare_seconds": round(prepare_seconds, 2),
            "bad_rows": len(bundle.bad_rows), "notes": notes, "precision": precision.name, "device": str(device),
            "machine": describe_machine(str(device)), "huge_pages": huge_pages,
            "sizes": {k: len(getattr(bundle, k)) for k in ("train", "val", "test")},
            "label_names": bundle.label_names, "run_dir": str(run_dir),
        })
        return summary

    closed = False
    try:
        state = fit(data.model, data.train, data.collate, optimizer, scheduler, cfg, loss_fn=loss_fn,
                    precision=precision, evaluate=evaluate, callbacks=cbs, state=state,
                    lengths=data.lengths, sample_weights=sample_weights, parallel=parallel)
        summary = final_summary(state)
        # summary.json; the final numbers and the saved model (PEFT runs: the adapter and head) as artifacts
        if main:
            closed = True
            finish_logging(trackers, run_dir, summary, artifacts=[run_dir / "model"])
    except BaseException as e:  # no summary: the trackers record the run as killed (Ctrl-C, SIGTERM) or failed,
        if not closed:          # also when the final evaluation raised after fit()
            finish_logging(trackers, run_dir, status=exit_status(e), callbacks=logging)
        raise
    return RunResult(run_dir, cfg, summary, model if keep_model else None)


def run_config(run_dir) -> tuple[Config, dict]:
    """A finished run's config and its saved model's description (label_names, ...), read from
    `config.yaml` and the model folder's JSON without loading the model."""
    from .errors import ModelLoadError
    from .models.save import read_meta

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ModelLoadError(f"{run_dir} is not a tunewright run folder (no config.yaml).")
    return load_config(run_dir / "config.yaml"), read_meta(run_dir / "model")


def load_run(run_dir) -> tuple[Config, torch.nn.Module, object, dict]:
    """A finished run's (config, best model in eval mode, preprocessor, model meta incl. label_names),
    rebuilt from `model/` alone (no pretrained download), except for PEFT runs, which save only the
    adapter and the head: their backbone comes from its pretrained source (packaged, cache or hub)."""
    from .models import load_run_model
    from .peft import apply_method, load_run_adapter

    run_dir = Path(run_dir)
    cfg, _ = run_config(run_dir)
    model, preprocessor, meta = load_run_model(run_dir / "model", before_load=lambda m, meta: apply_method(m, cfg),
                                               adapter_loader=load_run_adapter)
    return cfg, model, preprocessor, meta


def evaluate_run(run_dir, data: str | None = None, split: str = "test") -> dict:
    """Metrics of a finished run's best model on its own `split`, or on another file/packaged set."""
    from .data import build_data, read_data, read_split

    cfg, meta = run_config(run_dir)
    label_names = meta.get("label_names")
    # Read and validate the data first: bad data fails before any model loads, as in `train`.
    raw = read_split(data, cfg, label_names, split) if data else read_data(cfg)
    cfg, model, preprocessor, meta = load_run(run_dir)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device, cfg.train.cudnn_attention)
    model.to(device)
    bundle = build_data(raw, preprocessor, cfg)
    ds = getattr(bundle, split)
    eval_bs = eval_batch_size(cfg.train)
    return evaluate_dataset(model, ds, bundle.collate, cfg.task, bundle.num_labels or len(label_names or []) or None,
                            eval_bs, precision, label=f"evaluate {split}")
