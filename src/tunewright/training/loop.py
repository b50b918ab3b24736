"""The one training loop. Read it top to bottom; events.py lists every extension point.

Exact resume rests on three facts: the order of an epoch is a pure function of (seed, epoch)
(`data.epoch_batches`), the loop state says how many batches of the epoch are done, and the
checkpoint restores weights, optimizer, scheduler, callbacks and every RNG. A resumed run therefore
replays the same batches with the same dropout masks and ends bit-identical on CPU.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Sequence

import torch

from ..data.batching import rank_slice
from ..data.collate import to_device  # the batch contract is data's (strategies import it from here too)
from ..errors import TrainingError
from .callbacks import CallbackList
from .parallel import Parallel, Single


@dataclass
class TrainState:
    step: int = 0                 # optimizer steps done
    epoch: int = 0                # current epoch (0-based)
    batch_in_epoch: int = 0       # micro-batches of the current epoch already done
    batches_per_epoch: int = 0
    total_steps: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None
    improved: bool = False        # did the last evaluation improve the monitored metric?
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0
    samples_seen: int = 0
    train_seconds: float = 0.0
    should_stop: bool = False
    stop_reason: str | None = None
    # The losses since the last logged row, summed over ranks (saved, so that the first row after a
    # resume between two log steps is the mean an uninterrupted run logs): sum of micro-batch losses, count.
    window_loss: Any = 0.0
    window_n: int = 0
    # Of the micro-batch being trained, set before its forward pass (not saved: recomputed each time).
    # Callbacks read these instead of re-deriving them, so none depends on another's order.
    accum_boundary: bool = False  # its backward completes the gradients: an optimizer step follows
    log_step: bool = False        # ... and that step is one `on_log` fires on (every log_every_steps, and the last)
    step_loss: Any = None         # at a step's boundary: the mean loss of its micro-batches (0-d tensor, on the device)
    # Set by a callback that has a checkpoint folder the run must go back to; honoured after
    # `on_before_optimizer_step` (training/rewind.py: weights, optimizer, scheduler, callbacks, RNG, position).
    rewind_to: str | None = None

    TRANSIENT = ("accum_boundary", "log_step", "step_loss", "rewind_to")

    @property
    def epoch_float(self) -> float:
        return self.epoch + self.batch_in_epoch / max(self.batches_per_epoch, 1)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in self.TRANSIENT}
        d["window_loss"] = float(d["window_loss"])        # a 0-d tensor on the device while training
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class FitContext:
    """What every callback receives first."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    state: TrainState
    cfg: Any                      # tunewright.config.Config
    callbacks: CallbackList
    device: torch.device


def monitored(task: str, metric: str) -> tuple[str, str]:
    """(metric name, 'min' or 'max') that picks the best checkpoint."""
    if metric == "auto":
        metric = {"regression": "mse", "causal_lm": "loss", "multilabel": "macro_f1"}.get(task, "accuracy")
    mode = "min" if metric in ("loss", "mse", "mae", "perplexity") else "max"
    return metric, mode


def step_counts(n: int, t, world: int = 1) -> tuple[int, int, int]:
    """(batches per epoch, optimizer steps per epoch, total optimizer steps) of `fit()` over `n` rows
    with the train config `t` on `world` processes: the one place these numbers come from (the loop,
    the scheduler, lr-plot). A global micro-batch is `batch_size x world` rows."""
    batches = -(-n // (t.batch_size * world))
    per_epoch = -(-batches // t.grad_accum)
    return batches, per_epoch, t.max_steps or per_epoch * t.epochs


def fit(model: torch.nn.Module, train_set, collate: Callable, optimizer, scheduler, cfg, *,
        loss_fn: Callable, precision, evaluate: Callable[[], dict] | None = None,
        callbacks: Sequence = (), state: TrainState | None = None,
        lengths: list[int] | None = None, sample_weights: list[float] | None = None,
        epoch_batches: Callable | None = None, parallel: Parallel | None = None) -> TrainState:
    """Train `model` on `train_set`; `evaluate()` returns {"val": {...}, ...} when an evaluation is due.

    `parallel`: the processes this one trains with (training/parallel.py); None is one process. Every
    rank runs this same loop over the same global batches and takes its own slice of each."""
    if epoch_batches is None:
        from ..data import epoch_batches
    par = parallel or Single()
    t = cfg.train
    device = precision.device
    state = state or TrainState()
    cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks)
    ctx = FitContext(model, optimizer, scheduler, state, cfg, cbs, device)
    metric, mode = monitored(cfg.task, t.metric)
    scaler = precision.grad_scaler()
    params = [p for g in optimizer.param_groups for p in g["params"]]

    n = len(train_set)
    state.batches_per_epoch, steps_per_epoch, state.total_steps = step_counts(n, t, par.world)
    epochs = math.ceil(state.total_steps / steps_per_epoch)

    def run_evaluation() -> None:
        if evaluate is None:
            return
        metrics = evaluate()
        value = metrics.get("val", {}).get(metric)
        better = value is not None and (state.best_metric is None or
                                        (value < state.best_metric if mode == "min" else value > state.best_metric))
        state.improved = bool(better)
        if better:
            state.best_metric, state.best_step, state.best_epoch = float(value), state.step, state.epoch
        model.train()
        cbs.fire("on_evaluate", ctx, metrics=metrics)

    t_start = time.perf_counter() - state.train_seconds
    step_loss, step_n = 0.0, 0
    cbs.fire("on_fit_start", ctx)
    model.train()
    while state.epoch < epochs and not state.should_stop:
        cbs.fire("on_epoch_start", ctx)
        # The global order: a pure function of (seed, epoch), the same on every rank. One global
        # micro-batch is batch_size x world rows; this rank trains on its own slice of each.
        order = epoch_batches(n, t.batch_size * par.world, t.seed, state.epoch,
                              lengths=lengths if cfg.data.bucket else None, weights=sample_weights)
        rewound = False
        for i in range(state.batch_in_epoch, len(order)):
            rows = rank_slice(order[i], par.rank, par.world)
            # A rank left without rows (a last batch shorter than world) runs one row at weight 0: it must
            # still join the gradient all-reduce.
            batch = to_device(collate([train_set[j] for j in rows or order[i][:1]]), device)
            state.accum_boundary = (i + 1) % t.grad_accum == 0 or i + 1 == len(order)
            state.log_step = state.accum_boundary and ((state.step + 1) % t.log_every_steps == 0
                                                       or state.step + 1 == state.total_steps)
            par.seed_micro_batch(t.seed, state.epoch, i)  # several ranks: dropout per (seed, epoch, i, rank)
            cbs.fire("on_batch_start", ctx, batch=batch)
            with par.replica(model, sync=state.accum_boundary) as net:  # no_sync() around forward AND backward
                with precision.autocast():
                    logits = net(batch)
                    loss = loss_fn(logits, batch)
                loss = cbs.transform("on_loss", loss, ctx, batch=batch)  # extra terms: EWC, L2-SP, ...
                weight = par.loss_weight(batch, real=bool(rows))  # 1 in one process
                scaled = loss * weight / t.grad_accum
                (scaler.scale(scaled) if scaler else scaled).backward()
            cbs.fire("on_after_backward", ctx)
            state.batch_in_epoch = i + 1
            state.samples_seen += len(order[i])  # global rows
            # This rank's share of the global batch's mean loss; kept on the device: a float() here would
            # wait for the GPU on every micro-batch.
            share = loss.detach().float() * weight / par.world
            step_loss, step_n = step_loss + share, step_n + 1

            if not state.accum_boundary:
                continue
            state.window_loss = state.window_loss + par.all_sum(step_loss)   # every rank: the global sum
            state.window_n += step_n
            state.step_loss, step_loss, step_n = step_loss / step_n, 0.0, 0
            if scaler:
                scaler.unscale_(optimizer)
            norm = par.clip_grad_norm(params, t.max_grad_norm or float("inf"))
            # The step's one host sync: skipping a non-finite step must be decided before optimizer.step(),
            # and by every rank alike.
            if not par.all_true(torch.isfinite(norm) & torch.isfinite(loss.detach())):
                loss_value, grad_norm = float(loss.detach()), float(norm)
                # Skip: gradients dropped, weights and optimizer state untouched.
                optimizer.zero_grad(set_to_none=True)
                if scaler:
                    scaler.update()
                state.nonfinite_in_row += 1
                state.nonfinite_total += 1
                cbs.fire("on_nonfinite", ctx, loss=loss_value, grad_norm=grad_norm)
                if state.nonfinite_in_row >= t.max_nonfinite_steps:
                    raise TrainingError(f"{state.nonfinite_in_row} non-finite steps in a row (last loss {loss_value}, "
                                        f"grad norm {grad_norm}) at step {state.step}; stopping. Lower train.lr, "
                                        f"check the data, or use train.precision=fp32.")
                state.window_loss, state.window_n = 0.0, 0
                continue
            state.nonfinite_in_row = 0
            cbs.fire("on_before_optimizer_step", ctx)
            if state.rewind_to is not None:            # a callback asked to go back to a checkpoint
                from .rewind import rewind
                optimizer.zero_grad(set_to_none=True)  # this step's gradients are never applied
                if scaler:
                    scaler.update()
                rewind(ctx)                            # weights, optimizer, scheduler, callbacks, RNG, position
                cbs.fire("on_rewind", ctx)             # e.g. the loss-spike rollback lowers the LR here
                state.window_loss, state.window_n, rewound = 0.0, 0, True
                break
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            cbs.fire("on_after_optimizer_step", ctx)  # gradients still there (AdaLoRA's budget step)
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.train_seconds = time.perf_counter() - t_start

            if state.log_step:
                lrs = {f"lr/{g.get('name', k)}": g["lr"] for k, g in enumerate(optimizer.param_groups)}
                row = {"step": state.step, "epoch": round(state.epoch_float, 4), "split": "train",
                       "loss": float(state.window_loss) / max(state.window_n, 1),
                       "lr": optimizer.param_groups[0]["lr"],
                       "grad_norm": float(norm), "samples_per_s": state.samples_seen / max(state.train_seconds, 1e-9)}
                if len(lrs) > 1:
                    row.update(lrs)
                cbs.fire("on_log", ctx, row=row)
                state.window_loss, state.window_n = 0.0, 0
            if t.eval_every_steps and state.step % t.eval_every_steps == 0:
                run_evaluation()
            cbs.fire("on_step_end", ctx)
            if state.step >= state.total_steps:
                state.should_stop, state.stop_reason = True, state.stop_reason or "max_steps reached"
            if state.should_stop:
                break
        if rewound:
            continue                                   # from the restored position, as `--resume` would
        # The epoch is over (or the run stops mid-epoch): evaluate per epoch unless per-step.
        epoch_done = state.batch_in_epoch >= len(order)
        if epoch_done:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        if not t.eval_every_steps or (state.should_stop and state.step % t.eval_every_steps):
            run_evaluation()
        state.train_seconds = time.perf_counter() - t_start
        if epoch_done:
            cbs.fire("on_epoch_end", ctx)
    state.train_seconds = time.perf_counter() - t_start
    cbs.fire("on_fit_end", ctx)
    return state
