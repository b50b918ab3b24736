"""layer_groups: every parameter in exactly one group, bottom -> top, head last."""
import pytest
import torch
from torch import nn

from tunewright.errors import ConfigError
from tunewright.models import TaskModel, group_of, layer_groups, load_model


def check_cover(model, groups):
    names = [n for n, _ in model.named_parameters()]
    flat = [n for g in groups for n in g.param_names]
    assert sorted(flat) == sorted(names)          # all covered ...
    assert len(flat) == len(set(flat))            # ... exactly once
    assert all(g.param_names for g in groups)     # no empty groups
    assert len({g.name for g in groups}) == len(groups)


def test_bert_groups(tiny_bert_dir, tw):
    model, _ = load_model(tw.cfg(tiny_bert_dir), 3)
    groups = layer_groups(model)
    check_cover(model, groups)
    assert [g.name for g in groups] == ["embeddings", "block.0", "block.1", "head"]
    assert all(".encoder.layer.1." in n for n in groups[2].param_names)
    assert groups[-1].param_names == ["head.1.weight", "head.1.bias"]


def test_llama_groups_tied_and_untied(tw, tiny_llama_dir):
    from transformers import LlamaForCausalLM
    model, _ = load_model(tw.cfg(tiny_llama_dir, task="causal_lm"), None)
    groups = layer_groups(model)
    check_cover(model, groups)                    # lm_head is tied: it appears once, as embed_tokens
    assert [g.name for g in groups] == ["embeddings", "block.0", "block.1", "final"]
    assert groups[-1].param_names == ["backbone.model.norm.weight"]
    untied = LlamaForCausalLM(tw.llama_config(tie_word_embeddings=False))
    groups = layer_groups(untied)
    check_cover(untied, groups)
    assert [g.name for g in groups][-2:] == ["final", "head"] and groups[-1].param_names == ["lm_head.weight"]


def test_plain_cnn_and_mlp_fall_back_to_children(factory_module, tw):
    cnn, _ = load_model(tw.cfg(f"{factory_module}:cnn", task="image_classification"), 2)
    groups = layer_groups(cnn)
    check_cover(cnn, groups)
    assert [g.name for g in groups] == ["conv1", "bn1", "conv2", "head"]
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))   # not a TaskModel
    groups = layer_groups(mlp)
    check_cover(mlp, groups)
    assert [g.name for g in groups] == ["0", "2"]


def test_homogeneous_stack_in_plain_module():
    net = nn.Sequential()
    net.add_module("inp", nn.Linear(3, 8))
    net.add_module("blocks", nn.ModuleList([nn.Linear(8, 8) for _ in range(3)]))
    net.add_module("out", nn.LayerNorm(8))
    model = TaskModel(net, nn.Linear(8, 2), task="classification", num_labels=2, modality="tensor",
                      pooling=None, hidden_size=8, source={"type": "factory"})
    groups = layer_groups(model)
    check_cover(model, groups)
    assert [g.name for g in groups] == ["embeddings", "block.0", "block.1", "block.2", "final", "head"]


def test_rules_override_and_unmatched_error(tiny_bert_dir, tw):
    model, _ = load_model(tw.cfg(tiny_bert_dir), 3)
    rules = [(r"embeddings", "bottom"), (r"layer\.(\d+)\.", r"layer\1"), (r"^head\.", "head"), (r".*", "rest")]
    groups = layer_groups(model, rules)
    check_cover(model, groups)
    assert [g.name for g in groups] == ["bottom", "layer0", "layer1", "head"]
    assert group_of(model, rules)["head.1.bias"] == "head"
    with pytest.raises(ConfigError, match="match no rule"):
        layer_groups(model, [(r"embeddings", "bottom")])


@pytest.mark.assets
def test_real_efficientnet_stages_and_minilm(tw):
    torch.manual_seed(0)
    eff, _ = load_model(tw.cfg("efficientnet-lite0", task="image_classification"), 5)
    groups = layer_groups(eff)
    check_cover(eff, groups)
    assert [g.name for g in groups] == ["stem"] + [f"stage.{i}" for i in range(7)] + ["final", "head"]
    blocks_per_stage = [len({n.split("._blocks.")[1].split(".")[0] for n in g.param_names}) for g in groups[1:8]]
    assert blocks_per_stage == [1, 2, 2, 3, 3, 4, 1]   # lite0's repeats: r1 r2 r2 r3 r3 r4 r1
    assert groups[-2].param_names[0] == "backbone._conv_head.weight"
    minilm, _ = load_model(tw.cfg("minilm"), 2)
    groups = layer_groups(minilm)
    check_cover(minilm, groups)
    assert [g.name for g in groups] == ["embeddings"] + [f"block.{i}" for i in range(6)] + ["head"]
