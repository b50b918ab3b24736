"""prefix_tuning.init_text: the prefix starts as the causal LM's own key/value cache of the text, so the
prefixed model's logits for x equal the base model's logits for [text tokens] + x (on x's positions);
peft's default random prefix does not."""
import pytest
import torch

from tunewright.config.load import config_from_dict
from tunewright.errors import ConfigError
from tunewright.models import load_model
from tunewright.peft import apply_method


def _model(**prefix):
    cfg = config_from_dict({"task": "causal_lm", "model": {"name": "tiny-llama"}, "method": "prefix_tuning",
                            "prefix_tuning": {"num_virtual_tokens": 4, **prefix}})
    torch.manual_seed(0)
    model, tok = load_model(cfg, None)
    return cfg, model.eval(), tok


def test_init_text_prefix_equals_reading_the_text_first():
    cfg, model, tok = _model(init_text="hello world, a test")
    text_ids = (tok("hello world, a test", add_special_tokens=False)["input_ids"] * 4)[:4]
    x = torch.tensor([[5, 9, 17, 3, 8]])
    with torch.no_grad():
        reference = model.backbone(input_ids=torch.tensor([text_ids + x[0].tolist()])).logits[:, 4:]   # (1, 5, V)
    apply_method(model, cfg)
    with torch.no_grad():
        got = model({"input_ids": x, "attention_mask": torch.ones_like(x)})                          # (1, 5, V)
    assert got.shape == reference.shape
    assert torch.allclose(got, reference, atol=1e-4), (got - reference).abs().max()

    cfg_random, random_model, _ = _model()
    apply_method(random_model, cfg_random)
    with torch.no_grad():
        other = random_model({"input_ids": x, "attention_mask": torch.ones_like(x)})
    assert not torch.allclose(other, reference, atol=1e-2)                 # the random default is far off


def test_init_text_with_projection_is_refused():
    cfg, model, _ = _model(init_text="hello", projection=True)
    with pytest.raises(ConfigError, match="init_text"):
        apply_method(model, cfg)
