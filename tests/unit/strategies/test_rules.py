"""freeze(model, rules): first matching rule decides; uncovered parameters are an error that names them."""
import pytest
from torch import nn

from tunewright.errors import ConfigError
from tunewright.models import TaskModel
from tunewright.strategies.groups import GroupIndex, strategy_groups
from tunewright.strategies.rules import depth_rules, freeze, parse_rules


def net() -> TaskModel:
    body = nn.Sequential()
    body.add_module("inp", nn.Linear(3, 8))
    body.add_module("blocks", nn.ModuleList([nn.Linear(8, 8) for _ in range(3)]))
    body.add_module("out", nn.LayerNorm(8))
    return TaskModel(body, nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 2)), task="classification", num_labels=2,
                     modality="tensor", pooling=None, hidden_size=8, source={"type": "factory"})


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_first_matching_rule_decides_and_numbers_are_lr_multiples():
    model = net()
    scales = freeze(model, parse_rules([[r"^head\.", "train"], [r"blocks\.2\.", 0.5], [r"blocks\.2\.bias", "freeze"],
                                        [".*", "freeze"]]))
    assert trainable(model) == {"head.1.weight", "head.1.bias", "backbone.blocks.2.weight", "backbone.blocks.2.bias"}
    assert scales == {"head.1.weight": 1.0, "head.1.bias": 1.0, "backbone.blocks.2.weight": 0.5,
                      "backbone.blocks.2.bias": 0.5}


def test_mapping_form_keeps_order():
    model = net()
    freeze(model, parse_rules({r"^head\.": "train", r".*": "freeze"}))
    assert trainable(model) == {"head.1.weight", "head.1.bias"}


def test_uncovered_parameter_is_an_error_naming_it_and_nothing_changes():
    model = net()
    with pytest.raises(ConfigError, match=r"no rule covers parameter 'backbone\.inp\.weight'.*catch-all"):
        freeze(model, parse_rules([[r"^head\.", "freeze"], [r"blocks|out", "freeze"]]))
    assert trainable(model) == {n for n, _ in model.named_parameters()}   # untouched


@pytest.mark.parametrize("raw, message", [
    ([["(", "train"]], r"rules\[0\]: '\(' is not a valid regular expression"),
    ([["x", "trian"]], r"rules\[0\]: action 'trian' is not allowed; choose train, freeze"),
    ([["x", 0]], r"rules\[0\]: LR multiple 0 is not allowed"),
    ([["x"]], r"rules\[0\]: \['x'\] is not allowed; write \[regex, action\]"),
    ("head", r"expected a list of \[regex, action\] pairs"),
])
def test_bad_rules_name_the_entry_value_and_allowed(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_rules(raw)


def test_train_top_k_groups_and_head():
    model = net()
    groups = strategy_groups(model)
    assert [g.name for g in groups] == ["embeddings", "block.0", "block.1", "block.2", "final", "head"]
    freeze(model, depth_rules(groups, 2))
    assert trainable(model) == {"backbone.blocks.2.weight", "backbone.blocks.2.bias", "backbone.out.weight",
                                "backbone.out.bias", "head.1.weight", "head.1.bias"}
    with pytest.raises(ConfigError, match="train_top: 6 is not allowed; this model has 5 layer groups"):
        depth_rules(groups, 6)


def test_group_index_places_parameters_added_later():
    model = net()
    index = GroupIndex(strategy_groups(model))
    assert index("backbone.blocks.1.weight") == "block.1"
    # an adapter injected into block 1, a wrapped layer, and a parameter under no known module
    assert index("backbone.blocks.1.lora_A.weight") == "block.1"
    assert index("backbone.blocks.1.base_layer.weight") == "block.1"
    assert index("prompt.embedding") == "head"
    assert index.depth("head") == 0 and index.depth("block.2") == 2


def test_tied_causal_lm_head_is_the_shared_embedding():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                      intermediate_size=32, max_position_embeddings=32, tie_word_embeddings=True)
    model = TaskModel(LlamaForCausalLM(cfg), nn.Identity(), task="causal_lm", num_labels=32, modality="text",
                      pooling=None, hidden_size=16, source={"type": "hf"})
    groups = strategy_groups(model)
    assert [g.name for g in groups] == ["block.0", "block.1", "final", "head"]
    assert groups[-1].param_names == ["backbone.model.embed_tokens.weight"]
    assert sum(len(g.param_names) for g in groups) == len(list(model.named_parameters()))
