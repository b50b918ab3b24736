"""The feature cache: computed once, never recomputed in later epochs, and training on it gives the
weights live training gives (same batches, same dropout), for whole-backbone features and for a
frozen prefix of blocks. Where caching would be wrong it is not used, and a note says why."""
import pytest
import torch

from tunewright.strategies.feature_cache import HeadOnly, PrefixCached


class CountForwards:
    def __init__(self, module):
        self.n = 0
        module.register_forward_hook(lambda *a: setattr(self, "n", self.n + 1))


def run(tw_models, cfg, count=None):
    counter = {}

    class Count:                                   # counts backbone forwards during fit() only
        def on_fit_start(self, ctx):
            m = ctx.model.model if isinstance(ctx.model, PrefixCached) else ctx.model
            if hasattr(m, "backbone"):
                counter["fit"] = CountForwards(m.backbone.get_submodule(count) if count else m.backbone)
    out = tw_models.fit_run(cfg, callbacks=[Count()])
    return out, counter.get("fit")


@pytest.mark.parametrize("kind", ["bert", "cnn"])
def test_cached_features_train_like_live_and_run_the_backbone_once(kind, tmp_path, tw_models, cnn_factory):
    base = tw_models.config(kind, tmp_path, cnn_factory)
    base.update(strategy="feature_extraction")
    base["train"].update(epochs=4)
    (model_c, before, data_c, state_c, plans_c), _ = run(tw_models, base)
    live = dict(base, strategy_options={"cache_features": False})
    (model_l, _, data_l, state_l, plans_l), fwd = run(tw_models, live)
    assert isinstance(data_c.model, HeadOnly) and data_c.model is not model_c
    assert any("feature cache: backbone features" in n for n in plans_c[0].notes)
    assert any("cache_features is off" in n for n in plans_l[0].notes)
    assert fwd.n == state_l.step                   # live: one backbone pass per step ...
    for name in ("head.1.weight", "head.1.bias"):  # ... the cache: none, and the same result
        assert torch.allclose(dict(model_c.named_parameters())[name], dict(model_l.named_parameters())[name],
                              atol=1e-5)
    assert not torch.equal(before["head.1.weight"], dict(model_c.named_parameters())["head.1.weight"])


# EfficientNet: the cached prefix runs its convolutions at another batch shape than the live pass,
# so its features differ from the live ones in the last float bits. AdamW divides each update by
# sqrt(v), which turns such noise on near-zero gradients into full-size steps (4.2e-4 apart after a
# few steps), so that case trains with SGD, whose updates are linear in the gradient: any real
# difference between cached and live features still shows, float noise does not.
@pytest.mark.parametrize("kind, top, cut, optimizer", [
    ("bert", 1, "backbone.encoder.layer.1", "adamw"),
    ("cnn", 1, "backbone.conv2", "adamw"),
    pytest.param("effnet", 2, "backbone._blocks.15", "sgd", marks=pytest.mark.assets),
])
def test_frozen_prefix_cache_trains_like_live(kind, top, cut, optimizer, tmp_path, tw_models, cnn_factory):
    tol = 1e-4
    if kind == "effnet":
        pytest.importorskip("efficientnet_lite_pytorch")
    base = tw_models.config(kind, tmp_path, cnn_factory)
    base.update(strategy="partial", strategy_options={"train_top": top})
    base["train"].update(optimizer=optimizer)
    (model_c, before, data_c, _, plans_c), first = run(tw_models, base, count="")
    assert isinstance(data_c.model, PrefixCached) and data_c.model.cut.cut == cut
    assert any(f"training runs from {cut} up" in n for n in plans_c[0].notes)
    live = dict(base, strategy_options={"train_top": top, "cache_features": False})
    (model_l, _, _, _, _), _ = run(tw_models, live)
    a, b = dict(model_c.named_parameters()), dict(model_l.named_parameters())
    moved = [n for n, p in a.items() if p.requires_grad]
    travel = max((a[n].detach() - before[n]).abs().max().item() for n in moved)
    assert travel > 10 * tol, travel               # training moved the weights far beyond the tolerance
    assert moved and all(torch.allclose(a[n], b[n], atol=tol) for n in moved), \
        max((a[n] - b[n]).abs().max().item() for n in moved)
    # the swap is undone after every forward: the model holds every block
    assert all(type(m).__name__ != "Skip" for m in model_c.modules())


def test_no_cache_with_augmentation_or_frozen_train_mode(tmp_path, tw_models, cnn_factory):
    cfg = tw_models.config("cnn", tmp_path, cnn_factory)
    cfg.update(strategy="feature_extraction")
    cfg["data"].update(hflip=True)
    cfg["train"].update(epochs=1)
    _, _, data, _, plans = tw_models.fit_run(cfg)
    assert not isinstance(data.model, HeadOnly)
    assert any("augmentation is on (hflip)" in n and "runs live" in n for n in plans[0].notes)
    cfg["data"].update(hflip=False)
    cfg["strategy_options"] = {"frozen_train_mode": True}
    _, _, data, _, plans = tw_models.fit_run(cfg)
    assert not isinstance(data.model, HeadOnly)
    assert any("frozen layers run in train mode" in n for n in plans[0].notes)
