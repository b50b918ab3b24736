"""The training loop written out once, with the name of every event where it fires.

A callback is any object with some of these methods; each receives the `FitContext` (model,
optimizer, scheduler, state, cfg) first. The loop never knows which callbacks exist.

    fire on_fit_start(ctx)
    for epoch in range(state.epoch, epochs):
        fire on_epoch_start(ctx)
        order = epoch_batches(n, batch_size, seed, epoch, lengths)   # pure function: resumable
        for batch in order[state.batch_in_epoch:]:
            state.accum_boundary, state.log_step = ...      # this micro-batch ends a step? a logged one?
            fire on_batch_start(ctx, batch=batch)
            logits = model(batch); loss = loss_fn(logits, batch)
            loss = transform on_loss(ctx, loss, batch=batch)   # each callback may add a term (EWC, L2-SP)
            (loss / grad_accum).backward()
            fire on_after_backward(ctx)
            if accumulation boundary:
                grad_norm = clip_grad_norm_(...)
                if loss or grad_norm is not finite:
                    zero grads, skip the step, fire on_nonfinite(ctx, loss=..., grad_norm=...)
                    raise TrainingError after max_nonfinite_steps in a row
                else:
                    fire on_before_optimizer_step(ctx)
                    optimizer.step()
                    fire on_after_optimizer_step(ctx)      # grads still there: AdaLoRA's budget step
                    scheduler.step(); zero_grad(); state.step += 1
                fire on_log(ctx, row={step, epoch, split="train", loss, lr, grad_norm, ...})  # every log_every_steps
                if evaluation due (every N steps): metrics = evaluate(); fire on_evaluate(ctx, metrics=metrics)
                fire on_step_end(ctx)                      # step checkpoints
                stop if state.should_stop or state.step == max_steps
        if evaluation is per epoch: metrics = evaluate(); fire on_evaluate(ctx, metrics=metrics)
        fire on_epoch_end(ctx)                             # unfreezing, epoch checkpoints
    fire on_fit_end(ctx)

`on_evaluate` sees `ctx.state.improved` (did the monitored metric improve?) so the best-model saver
and early stopping need no bookkeeping of their own. A callback with `state_dict()` and
`load_state_dict()` is saved in every checkpoint and restored on `--resume`.
"""

EVENTS = (
    "on_fit_start", "on_epoch_start", "on_batch_start", "on_loss", "on_after_backward",
    "on_nonfinite", "on_before_optimizer_step", "on_after_optimizer_step", "on_log", "on_evaluate", "on_step_end",
    "on_epoch_end", "on_fit_end",
)
