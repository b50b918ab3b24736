"""Through the real loop: every param group's LR follows its schedule at every step, at its own
discriminative multiple; a group that gradual unfreezing releases trains at exactly its scheduled LR
from that step on; no parameter is ever in two groups."""
import pytest

from tunewright.optim.schedules import schedule_fn, schedule_options


class LRSpy:
    """Records, before every optimizer step, each group's LR and whether its parameters can train."""

    def __init__(self):
        self.rows, self.param_ids = [], []

    def on_before_optimizer_step(self, ctx):
        self.param_ids = [id(p) for g in ctx.optimizer.param_groups for p in g["params"]]
        self.rows.append([(g["name"], g["lr"], g["initial_lr"], any(p.requires_grad for p in g["params"]))
                          for g in ctx.optimizer.param_groups])


@pytest.mark.parametrize("schedule", ["slanted_triangular", "one_cycle", "cosine", "polynomial", "constant"])
def test_each_group_follows_its_schedule_step_by_step(schedule, tmp_path, tw_models):
    cfg = tw_models.config("bert", tmp_path)
    cfg["strategy"] = "gradual_unfreezing"
    cfg["strategy_options"] = {"layer_lr": "ulmfit"}
    cfg["train"].update(schedule=schedule, warmup_ratio=0.1, epochs=3)
    spy = LRSpy()
    model, _, _, state, plans = tw_models.fit_run(cfg, callbacks=[spy])
    from tunewright.config.load import config_from_dict
    c = config_from_dict(cfg)
    fn = schedule_fn(schedule, state.total_steps, int(round(state.total_steps * 0.1)), **schedule_options(c.train))
    lr = c.train.lr
    names = [n for n, *_ in spy.rows[0]]
    assert len(names) == len(set(names))
    depth = {"head": 0, "block.1": 1, "block.0": 2, "embeddings": 3}
    per_epoch = state.total_steps // 3
    for step, row in enumerate(spy.rows):
        for name, got, initial, trains in row:
            group = name.removesuffix("/no_decay")
            assert initial == pytest.approx(lr / 2.6 ** depth[group])
            assert got == pytest.approx(initial * fn(step), rel=1e-12), (step, name)
            # unfrozen from the top: head at epoch 0, block.1 at epoch 1, block.0 at epoch 2
            assert trains == (depth[group] <= step // per_epoch), (step, name)
    assert len(spy.param_ids) == len(set(spy.param_ids)) == len(list(model.parameters()))
