"""The registry is built from the methods' declarations; what is derived from it must cover every method."""
from __future__ import annotations

import pytest

from tunewright.config.load import config_from_dict
from tunewright.errors import ConfigError
from tunewright.peft import METHODS, apply_method
from tunewright.peft.base import _is_adapter_param
from tunewright.run import prepare

ADDS_PARAMETERS = [name for name, spec in METHODS.items() if spec.adapter_pattern]


def test_every_method_module_is_registered():
    assert set(METHODS) >= {"none", "lora", "adalora", "prompt_tuning", "prefix_tuning", "adapter", "bitfit", "ia3"}
    assert all(spec.module.startswith("tunewright.peft.") for name, spec in METHODS.items() if spec.freezes_base)


@pytest.mark.parametrize("method", ADDS_PARAMETERS)
def test_every_added_parameter_is_an_adapter_parameter_not_the_heads(method, contract_config, tmp_path):
    """Fails when a method's adapter_pattern misses a parameter it adds: that parameter would be saved into
    head.safetensors beside the adapter."""
    cfg = config_from_dict(contract_config("bert", method=method, output_dir=str(tmp_path)))
    _, model, _, _ = prepare(cfg)
    before = {n for n, _ in model.named_parameters()}
    apply_method(model, cfg)
    wrapped = lambda n: n.replace(".base_layer", "").replace("base_model.model.", "").replace("base_model.", "")  # noqa: E731
    added = [n for n, _ in model.named_parameters() if wrapped(n) not in before]
    assert added, f"{method} added no parameter"
    missed = [n for n in added if not _is_adapter_param(n)]
    assert not missed, f"{method}: parameters not recognised as adapter parameters: {missed[:5]}"
    assert not any(_is_adapter_param(n) for n in before if n.startswith("head."))


@pytest.mark.parametrize("key,typo,suggestion", [("method", "lroa", "lora"), ("strategy", "parital", "partial")])
def test_a_misspelt_name_fails_at_config_load_with_a_suggestion(key, typo, suggestion):
    with pytest.raises(ConfigError, match=rf"{key}: '{typo}' is not known.*Did you mean '{suggestion}'"):
        config_from_dict({key: typo})


def test_each_method_declares_its_config_section():
    """A method's options dataclass is the type of the config section named like the method (`lora:`), and no
    config section of method options is left without a method that declares it."""
    import dataclasses
    import typing

    from tunewright.config.schema import Config
    from tunewright.peft.registry import METHODS

    types = typing.get_type_hints(Config)
    sections = {f.name: types[f.name] for f in dataclasses.fields(Config)}
    for name, m in METHODS.items():
        if m.freezes_base:                                     # every PEFT method (not `none`) has options
            assert m.options is not None and sections.get(name) is m.options, (name, m.options)
    declared = {m.options for m in METHODS.values() if m.options is not None}
    method_sections = {n for n, f in ((f.name, f) for f in dataclasses.fields(Config))
                       if str(f.metadata.get("help", "")).startswith("method: ")}
    assert method_sections and all(sections[n] in declared for n in method_sections), method_sections
