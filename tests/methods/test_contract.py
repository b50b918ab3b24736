"""The one contract every method keeps, on four tiny models (STYLE.md, rule 9).

For each method x model, through the real `train()` / `load_run()`:
- at init the output equals the base model's, where the method promises it;
- training changes only the method's own parameters (and the head);
- save, then load, gives identical logits;
- merged output equals unmerged output within 1e-5 (fp32), where merging applies;
- a resumed run equals an uninterrupted one, bit for bit.
A combination a method does not support is skipped here with its reason, and
`test_unsupported_combinations_fail_clearly` checks that it is refused with that reason.
"""
from __future__ import annotations

import copy
import re

import pytest
import torch

from tunewright.config.load import config_from_dict
from tunewright.errors import TunewrightError
from tunewright.peft import METHODS as DECLARED, apply_method, can_merge, merge, merge_report, unmerge
from tunewright.run import load_run, prepare, train

# Every registered method (`none` is no method); what each promises comes from its declaration (peft/method.py).
METHODS = [name for name, spec in DECLARED.items() if spec.freezes_base]
MODELS = ["bert", "llama", "cnn", "mlp"]
# The only hand-kept part: the combinations a method cannot do, and why.
UNSUPPORTED = {
    ("prompt_tuning", "cnn"): "prompt tuning needs token embeddings",
    ("prompt_tuning", "mlp"): "prompt tuning needs token embeddings",
    ("prefix_tuning", "cnn"): "prefix tuning needs attention layers",
    ("prefix_tuning", "mlp"): "prefix tuning needs attention layers",
    ("bitfit", "llama"): "Llama has no bias terms",
    ("adalora", "cnn"): "AdaLoRA (peft) adapts linear layers; the CNN has none",
}


def own_rule(method: str, adapter: str = "default") -> re.Pattern:
    """The parameters a method trains (its declared own_pattern for this adapter name)."""
    return re.compile(DECLARED[method].own_pattern(adapter))


def added_rule(method: str, adapter: str = "default") -> re.Pattern:
    """Every parameter a method adds, trained or not (AdaLoRA's ranknum): its own, or its adapter pattern."""
    spec = DECLARED[method]
    return re.compile("|".join(p for p in (spec.own_pattern(adapter), spec.adapter_pattern) if p))


CASES = [pytest.param(m, k, marks=pytest.mark.skip(reason=UNSUPPORTED[(m, k)])) if (m, k) in UNSUPPORTED
         else pytest.param(m, k) for m in METHODS for k in MODELS]


def base_param(name: str, before: dict):
    """A wrapped parameter's counterpart in the unwrapped model, or None: drop the wrappers' path parts
    (peft's tuners: `base_model.model.`; prompt learning: `base_model.`; wrapped layers: `.base_layer`)."""
    name = name.replace(".base_layer", "")
    for cand in (name.replace("base_model.model.", ""), name.replace("base_model.", "")):
        if cand in before:
            return before[cand]
    return None


class Stop(Exception):
    pass


class StopAt:
    """Interrupts a run before it starts step `step` (after that step's checkpoint is written)."""

    def __init__(self, step):
        self.step = step

    def on_batch_start(self, ctx, batch):
        if ctx.state.step == self.step:
            raise Stop


@pytest.mark.parametrize("method,kind", CASES)
def test_init_equals_base(method, kind, contract_config, tmp_path):
    cfg = config_from_dict(contract_config(kind, method=method, output_dir=str(tmp_path), run_name="init"))
    _, model, _, bundle = prepare(cfg)
    batch = bundle.collate([bundle.val[i] for i in range(min(4, len(bundle.val)))])
    base = copy.deepcopy(model).eval()
    apply_method(model, cfg)
    model.eval()
    with torch.no_grad():
        same = torch.allclose(model(batch), base(batch), rtol=0, atol=1e-6)
    assert same == DECLARED[method].equal_at_init, f"{method} on {kind}: equal at init is {same}"


@pytest.mark.parametrize("method,kind", CASES)
def test_trains_only_its_own_parameters(method, kind, trained):
    """Against the parameters right after the method was applied (before the first step): each kind of
    parameter it trains changed, and no base parameter did. (Against the model from before the method
    existed, every added parameter would count as changed, and a frozen one would go unnoticed.)

    "Each kind" (`lora_B.default.weight` in any layer), not each tensor: a bottleneck adapter of width 1
    or 2 on these tiny models can have a dead ReLU in one layer, and then that layer's adapter gets no
    gradient at all."""
    cfg, base, result, _ = trained(method, kind)
    start, before = result.start, dict(base.named_parameters())
    own, added = own_rule(method, cfg.peft.adapter_name), added_rule(method, cfg.peft.adapter_name)
    changed: dict[str, bool] = {}                    # kind of own parameter -> changed in some layer
    frozen = []
    for name, p in result.model.named_parameters():
        if name.startswith("head."):
            continue                                                 # the head trains (peft.train_head)
        assert name in start, f"{method} on {kind}: {name} appeared during training"
        if own.search(name):
            frozen += [] if p.requires_grad else [name]
            role = ".".join(name.split(".")[-3:])
            changed[role] = changed.get(role, False) or not torch.equal(start[name], p)
        elif added.search(name):
            continue                       # added but not trained by gradients (AdaLoRA's ranknum: its budget)
        else:
            old = base_param(name, before)
            assert old is not None, f"{name} is new but not the method's own"
            assert torch.equal(start[name], p), f"{method} on {kind} changed base parameter {name} in training"
            assert torch.equal(old, p), f"{method} on {kind}: applying it changed base parameter {name}"
    assert changed, f"{method} on {kind}: no own parameter"
    still = sorted(role for role, moved in changed.items() if not moved)
    assert not still, f"{method} on {kind}: own parameters that did not change in 4 steps, in any layer: {still}"
    assert not frozen, f"{method} on {kind}: own parameters that are frozen: {frozen[:5]}"
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert all(own.search(n) or n.startswith("head.") for n in trainable)


@pytest.mark.parametrize("method,kind", CASES)
def test_save_then_load_gives_identical_logits(method, kind, trained):
    cfg, _, result, batch = trained(method, kind)
    model_dir = result.run_dir / "model"
    assert (model_dir / "adapter" / "adapter_config.json").is_file()
    assert (model_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (model_dir / "head.safetensors").is_file()
    # Only the adapter and the head, unless the base cannot be rebuilt (a user factory).
    assert (model_dir / "model.safetensors").is_file() == (kind in ("cnn", "mlp"))
    _, loaded, _, _ = load_run(result.run_dir)
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(batch), result.model(batch))


@pytest.mark.parametrize("method,kind", CASES)
def test_merged_equals_unmerged(method, kind, trained):
    cfg, _, result, batch = trained(method, kind)
    model = copy.deepcopy(result.model).eval()
    if not can_merge(model):
        assert not DECLARED[method].merges
        with pytest.raises(TunewrightError if method != "adapter" else NotImplementedError):
            merge(model)
        pytest.skip(f"{method} cannot be merged (by design)")
    with torch.no_grad():
        unmerged = model(batch)
        report = merge_report(model, batch)
        merged = model(batch)
        assert torch.allclose(merged, unmerged, rtol=0, atol=1e-5)
        assert report["max_abs_logit_diff"] <= 1e-5
        unmerge(model)
        assert torch.allclose(model(batch), unmerged, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method,kind", CASES)
def test_resumed_run_equals_uninterrupted(method, kind, trained, contract_config, tmp_path):
    _, _, full, batch = trained(method, kind)
    d = contract_config(kind, method=method, output_dir=str(tmp_path), run_name="resumed")
    with pytest.raises(Stop):
        train(d, callbacks=[StopAt(2)])
    resumed = train(d, resume=True, keep_model=True)
    a, b = dict(full.model.named_parameters()), dict(resumed.model.named_parameters())
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{method} on {kind}: {name} differs after resume"
    assert resumed.summary["steps"] == full.summary["steps"] == 4


@pytest.mark.parametrize("method,kind", sorted(UNSUPPORTED))
def test_unsupported_combinations_fail_clearly(method, kind, contract_config, tmp_path):
    cfg = config_from_dict(contract_config(kind, method=method, output_dir=str(tmp_path), run_name="no"))
    _, model, _, _ = prepare(cfg)
    with pytest.raises(TunewrightError, match=r"bias|linear|text transformer"):
        apply_method(model, cfg)
