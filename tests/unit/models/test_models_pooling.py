"""Pooling: padding never leaks into the pooled vector, in any mode, right- or left-padded."""
import pytest
import torch

from tunewright.models import load_model, pool
from tunewright.models.pooling import default_pooling, sentence_transformers_pooling


def test_pool_modes_by_hand():
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B=2, T=4, H=3)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])                   # right pad, left pad
    assert torch.equal(pool(h, mask, "cls"), h[:, 0])
    assert torch.allclose(pool(h, mask, "mean"), torch.stack([h[0, :3].mean(0), h[1, 1:].mean(0)]))
    assert torch.equal(pool(h, mask, "max"), torch.stack([h[0, :3].max(0).values, h[1, 1:].max(0).values]))
    assert torch.equal(pool(h, mask, "last"), torch.stack([h[0, 2], h[1, 3]]))
    with pytest.raises(ValueError):
        pool(h, mask, "median")


def test_all_pad_row_stays_finite():
    h = torch.randn(1, 3, 2)
    mask = torch.zeros(1, 3, dtype=torch.long)
    for mode in ("mean", "max"):
        assert torch.isfinite(pool(h, mask, mode)).all()


@pytest.mark.parametrize("mode", ["cls", "mean", "max", "last"])
def test_pad_tokens_do_not_change_features(mode, tiny_bert_dir, tw):
    """Changing what sits in the padded positions (other token ids there) changes nothing."""
    torch.manual_seed(0)
    model, tok = load_model(tw.cfg(tiny_bert_dir, pooling=mode), num_labels=3)
    model.eval()
    batch = tw.batch(tok, ["the cat sat on the mat", "a dog"])
    assert batch["attention_mask"][1].tolist().count(0) == 4        # second example is padded
    other = dict(batch, input_ids=batch["input_ids"].clone())
    other["input_ids"][batch["attention_mask"] == 0] = 7              # a real word in the pad slots
    with torch.no_grad():
        a, b = model.features(batch), model.features(other)
        # the pad slots' own token states do change; the pooled vector must not
        hidden = model.token_states(other)
    assert a.shape == (2, 16)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(hidden, model.token_states(batch))


def test_sentence_transformers_config_is_read():
    files = {"modules.json": '[{"type": "sentence_transformers.models.Transformer", "path": ""},'
                             ' {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}]',
             "1_Pooling/config.json": '{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}'}
    assert sentence_transformers_pooling(files.get) == "cls"
    assert sentence_transformers_pooling({}.get) is None


def test_default_pooling_by_architecture(tw):
    assert default_pooling(tw.bert_config()) == "cls"     # encoder
    assert default_pooling(tw.llama_config()) == "last"   # decoder-only


def test_auto_pooling_for_local_folders(tiny_bert_dir, tiny_llama_dir, tw):
    bert, _ = load_model(tw.cfg(tiny_bert_dir), num_labels=2)
    llama, tok = load_model(tw.cfg(tiny_llama_dir), num_labels=2)   # decoder used as a classifier
    assert (bert.pooling, llama.pooling) == ("cls", "last")
    assert tok.pad_token == tok.eos_token == "</s>"                   # pad = eos when none is defined
    logits = llama(tw.batch(tok))
    assert logits.shape == (2, 2)
