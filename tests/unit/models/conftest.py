"""Tiny models built from configs (no downloads), a word-level tokenizer, and a factory module."""
from __future__ import annotations

import os
import sys
import textwrap

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"] + (
    "the a of is capital france paris cat dog sat on mat hello world good bad movie film").split()


def make_tokenizer(pad: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    special = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"} if pad else {"eos_token": "</s>"}
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", **special)


def tiny_bert_config(**kw):
    from transformers import BertConfig
    return BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, pad_token_id=0, **kw)


def tiny_llama_config(**kw):
    from transformers import LlamaConfig
    kw.setdefault("tie_word_embeddings", True)
    return LlamaConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1, intermediate_size=32, max_position_embeddings=32,
                       eos_token_id=4, bos_token_id=None, pad_token_id=None, **kw)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """An HF folder: tiny BertModel (with pooler, like real checkpoints) + tokenizer."""
    from transformers import BertModel
    d = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(d)
    make_tokenizer().save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """An HF folder: tiny LlamaForCausalLM with tied embeddings + a tokenizer without a pad token."""
    from transformers import LlamaForCausalLM
    d = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config()).save_pretrained(d)
    make_tokenizer(pad=False).save_pretrained(d)
    return d


FACTORIES = textwrap.dedent('''
    import torch
    from torch import nn

    def mlp(in_dim=6, width=8):
        net = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, width))
        net.feature_dim = width
        return net

    class SmallCNN(nn.Module):
        def __init__(self, channels=4):
            super().__init__()
            self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.input_shape = (3, 8, 8)   # no feature_dim: tunewright finds it with a dry run

        def forward(self, x):               # (B, 3, S, S) -> (B, channels)
            x = torch.relu(self.bn1(self.conv1(x)))
            return self.pool(torch.relu(self.conv2(x))).flatten(1)

    def cnn(channels=4):
        return SmallCNN(channels)

    def logits_mlp(in_dim=6, out=3):
        return nn.Sequential(nn.Linear(in_dim, 8), nn.ReLU(), nn.Linear(8, out))

    def no_dim():
        return nn.Linear(3, 3)

    def not_a_module():
        return 42
''')


@pytest.fixture(scope="session")
def factory_module(tmp_path_factory):
    """Name of an importable module of factories written to a temp folder on sys.path."""
    d = tmp_path_factory.mktemp("factories")
    (d / "tw_test_factories.py").write_text(FACTORIES)
    sys.path.insert(0, str(d))
    yield "tw_test_factories"
    sys.path.remove(str(d))
    sys.modules.pop("tw_test_factories", None)


def make_cfg(name: str, task: str = "classification", **model_kw):
    from tunewright.config.schema import Config
    cfg = Config(task=task)
    cfg.model.name = str(name)
    for key, value in model_kw.items():
        setattr(cfg.model, key, value)
    return cfg


def text_batch(tok, texts=("the cat sat on the mat", "a dog")):
    enc = tok(list(texts), padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@pytest.fixture
def tw():
    """The helpers above, as a fixture (test modules must not import a conftest by name)."""
    from types import SimpleNamespace
    return SimpleNamespace(cfg=make_cfg, batch=text_batch, tokenizer=make_tokenizer, words=WORDS,
                           bert_config=tiny_bert_config, llama_config=tiny_llama_config)
