"""The adapter lifecycle: peft's own loader reads our files, several named adapters on one base,
merge with a drift report, target errors that list what exists, and the generate / merge commands."""
from __future__ import annotations

import copy
import importlib

import pytest
import torch

from tunewright.cli.main import main
from tunewright.config.load import config_from_dict
from tunewright.errors import ConfigError
from tunewright.models.save import read_meta
from tunewright.peft import adapters, apply_method, load_adapter, merge, merge_report, set_adapter, unmerge
from tunewright.run import load_run, prepare


def _hidden(out):
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("method,kind", [("lora", "bert"), ("adalora", "bert"), ("prompt_tuning", "bert"),
                                         ("prefix_tuning", "bert"), ("ia3", "bert"), ("lora", "llama"),
                                         ("prompt_tuning", "llama"), ("ia3", "llama")])
def test_plain_peft_from_pretrained_loads_our_adapter(method, kind, trained):
    """What a user without tunewright does: the HF base model + peft.PeftModel.from_pretrained(adapter/)."""
    from peft import PeftModel
    from transformers import AutoModel, AutoModelForCausalLM
    _, _, result, batch = trained(method, kind)
    meta = read_meta(result.run_dir / "model")
    auto = AutoModelForCausalLM if kind == "llama" else AutoModel
    base = auto.from_pretrained(meta["source"]["name_or_path"])
    plain = PeftModel.from_pretrained(base, str(result.run_dir / "model" / "adapter")).eval()
    _, ours, _, _ = load_run(result.run_dir)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        assert torch.allclose(_hidden(plain(**inputs)), _hidden(ours.backbone(**inputs)), atol=1e-6)


@pytest.mark.parametrize("kind,targets", [("mlp", ["auto"]), ("cnn", ["conv1"])])
def test_plain_peft_loads_our_own_lora_layers(kind, targets, trained, factory_module):
    """Own LoRA layers (any nn.Module) save peft's names and shapes: peft rebuilds them on the plain module,
    where peft can (the CNN's depthwise conv2 is why tunewright has its own layers: see the next test)."""
    from peft import PeftModel
    _, _, result, batch = trained("lora", kind, lora={"r": 4, "target_modules": targets})
    module = getattr(importlib.import_module(factory_module), kind)()
    plain = PeftModel.from_pretrained(module, str(result.run_dir / "model" / "adapter")).eval()
    result.model.eval()
    with torch.no_grad():
        assert torch.allclose(plain(batch["pixel_values"]), result.model.backbone(batch["pixel_values"]), atol=1e-6)


def test_peft_alone_cannot_adapt_a_depthwise_conv_but_tunewright_can(trained, factory_module):
    from peft import PeftModel
    _, _, result, _ = trained("lora", "cnn")                        # auto: conv1 and the depthwise conv2
    assert any("conv2.lora_A" in n for n, _ in result.model.named_parameters())
    module = getattr(importlib.import_module(factory_module), "cnn")()
    with pytest.raises(ValueError, match="groups"):
        PeftModel.from_pretrained(module, str(result.run_dir / "model" / "adapter"))


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_several_named_adapters_on_one_base_and_switching(method, trained, contract_config, tmp_path):
    """Two runs (different seeds, so different adapters and heads) loaded side by side onto one base."""
    _, _, run_a, batch = trained(method, "bert")
    _, _, run_b, _ = trained(method, "bert", train={"seed": 7, "batch_size": 4, "max_steps": 4, "num_threads": 1,
                                                    "progress": "none", "lr": 1e-3})
    cfg = config_from_dict(contract_config("bert", output_dir=str(tmp_path)))
    _, model, _, _ = prepare(cfg)                                   # a plain pretrained base + a fresh head
    load_adapter(model, run_a.run_dir, name="a")
    load_adapter(model, run_b.run_dir, name="b", activate=False)
    assert adapters(model) == ["a", "b"]
    model.eval()
    run_a.model.eval()
    run_b.model.eval()
    with torch.no_grad():
        expect_a, expect_b = run_a.model(batch), run_b.model(batch)
        assert not torch.allclose(expect_a, expect_b, atol=1e-4)
        assert torch.equal(model(batch), expect_a)
        set_adapter(model, "b")
        assert torch.equal(model(batch), expect_b)
        set_adapter(model, "a")
        assert torch.equal(model(batch), expect_a)


def test_merge_report_and_unmerge_with_dora(trained):
    _, _, result, batch = trained("lora", "bert", lora={"r": 4, "use_dora": True, "use_rslora": True})
    model = copy.deepcopy(result.model).eval()
    with torch.no_grad():
        before = model(batch)
        report = merge_report(model, batch)
        assert report["max_abs_logit_diff"] < 1e-5 and report["batch_size"] == batch["input_ids"].shape[0]
        unmerge(model)
        assert torch.allclose(model(batch), before, atol=1e-6)


@pytest.mark.parametrize("kind,target", [("bert", "querry"), ("mlp", "9")])
def test_unknown_target_lists_the_module_names(kind, target, contract_config, tmp_path):
    cfg = config_from_dict(contract_config(kind, method="lora", output_dir=str(tmp_path),
                                           lora={"target_modules": [target, "1" if kind == "mlp" else "query"]}))
    _, model, _, _ = prepare(cfg)
    with pytest.raises(ConfigError, match=rf"'{target}' matches no module.*(query|value|\b1\b)"):
        apply_method(model, cfg)


def test_regex_and_suffix_targets(contract_config, tmp_path):
    cfg = config_from_dict(contract_config("bert", method="lora", output_dir=str(tmp_path),
                                           lora={"target_modules": [r".*layer\.1\.attention\.self\.(query|value)"]}))
    _, model, _, _ = prepare(cfg)
    apply_method(model, cfg)
    wrapped = {n.split(".base_model.model.")[1].rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters()
               if ".lora_A." in n}
    assert wrapped == {"encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"}


def test_strategy_choices_survive_the_method(contract_config, tmp_path):
    """A strategy that chose the existing parameters that train (its Plan says so) keeps them; the method
    adds its own."""
    from tunewright.training.plan import Plan
    cfg = config_from_dict(contract_config("bert", method="lora", output_dir=str(tmp_path)))
    _, model, _, _ = prepare(cfg)
    for n, p in model.named_parameters():
        p.requires_grad_("layer.1." in n)
    plan = Plan(lr_scale={"backbone.encoder.layer.1.output.dense.weight": 0.5}, chose_parameters=True)
    apply_method(model, cfg, plan)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for n in trainable)
    assert "backbone.base_model.model.encoder.layer.1.output.dense.base_layer.weight" in trainable
    assert not any("layer.0." in n and "lora_" not in n for n in trainable)
    assert plan.lr_scale == {"backbone.base_model.model.encoder.layer.1.output.dense.base_layer.weight": 0.5}


def test_a_strategy_that_trains_everything_leaves_the_choice_to_the_method(contract_config, tmp_path):
    from tunewright.strategies import plan_strategy
    cfg = config_from_dict(contract_config("bert", method="lora", output_dir=str(tmp_path)))   # strategy: full
    _, model, _, _ = prepare(cfg)
    plan = plan_strategy(model, cfg)
    assert not plan.chose_parameters
    apply_method(model, cfg, plan)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("head.") for n in trainable)


def test_generate_and_merge_commands(trained, capsys):
    _, _, lm_run, _ = trained("lora", "llama")
    assert main(["generate", str(lm_run.run_dir), "What is the capital of France?", "--max-new-tokens", "5",
                 "--temperature", "0.8", "--top-p", "0.9"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["generate", str(lm_run.run_dir), "hello", "--max-new-tokens", "4", "--temperature", "0"]) == 0
    _, _, run, batch = trained("lora", "bert")
    out = run.run_dir.parent / "merged"
    assert main(["merge", str(run.run_dir), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "drift report: merged vs unmerged, max |logit difference| =" in printed
    cfg, merged, _, meta = load_run(out)
    assert cfg.method == "none" and meta["weights"] == "full"
    run.model.eval()
    with torch.no_grad():
        assert torch.allclose(merged(batch), run.model(batch), atol=1e-5)


def test_merge_refuses_methods_that_cannot(trained):
    _, _, run, _ = trained("adapter", "bert")
    assert main(["merge", str(run.run_dir)]) == 2
    model = copy.deepcopy(trained("prompt_tuning", "bert")[2].model)
    with pytest.raises(Exception, match="nothing to merge"):
        merge(model)


def test_adalora_prunes_and_its_budget_state_is_checkpointed(trained):
    """The budget callback ran (ranks were pruned) and its scores and rank pattern are in the checkpoints."""
    import json
    _, _, run, _ = trained("adalora", "bert")
    ckpts = sorted((run.run_dir / "checkpoints").glob("step-*"))
    mid = json.loads((ckpts[0] / "state.json").read_text())["trainer_state"]["callbacks"]["AdaLoraBudget"]
    assert ckpts[0].name == "step-000002" and mid["ipt"] and mid["exp_avg_ipt"] and mid["exp_avg_unc"]
    end = json.loads((ckpts[-1] / "state.json").read_text())["trainer_state"]["callbacks"]["AdaLoraBudget"]
    pattern = end["rank_pattern"]
    kept = [k for v in pattern.values() for k in v]
    assert pattern and 0 < sum(kept) < len(kept)           # some ranks pruned, not all
    saved = json.loads((run.run_dir / "model" / "adapter" / "adapter_config.json").read_text())
    assert saved["rank_pattern"]                             # peft saves the pruned shapes with it


def test_adalora_best_model_restores_into_a_model_with_a_later_rank_pattern(trained):
    """The run's best adapter can predate the last budget step: restoring it at the end of training
    must follow the saved rank pattern, not the model's current one (peft resizes by the latter)."""
    from tunewright.peft import apply_method
    from tunewright.peft.base import restore_saved
    cfg, _, run, batch = trained("adalora", "bert")
    _, model, _, _ = prepare(cfg)
    apply_method(model, cfg)
    config = model.backbone.peft_config["default"]
    config.rank_pattern = {k: [True] * len(v) for k, v in run.model.backbone.peft_config["default"].rank_pattern.items()}
    assert restore_saved(model, run.run_dir / "model")
    model.eval(), run.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(batch), run.model(batch), atol=1e-6)
