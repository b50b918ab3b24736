"""Shared fixtures: a tiny word-level tokenizer (no model download) and config helpers."""
from __future__ import annotations

from pathlib import Path

import pytest

from tunewright.config.schema import Config

DATA = Path(__file__).resolve().parents[2] / "data"     # tests/data
CHAT_TEMPLATE = ("{% for m in messages %}<|user|> {{ m['content'] }}{% endfor %}"
                 "{% if add_generation_prompt %} <|assistant|>{% endif %}")


def make_tokenizer(words: list[str], chat_template: str | None = None):
    """Whitespace word-level fast tokenizer: [PAD]=0, [UNK]=1, </s>=2 (eos), chat markers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "</s>": 2, "<|user|>": 3, "<|assistant|>": 4}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                  eos_token="</s>")
    if chat_template:
        tok.chat_template = chat_template
    return tok


def _words() -> list[str]:
    words = []
    for f in sorted(DATA.glob("tiny_*")):
        words += f.read_text().replace(",", " ").replace('"', " ").split()
    return sorted(set(words))


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer(_words())


@pytest.fixture(scope="session")
def chat_tokenizer():
    return make_tokenizer(_words(), CHAT_TEMPLATE)


@pytest.fixture
def cfg():
    """A config reading files only (never the packaged default), fixed seed."""
    c = Config()
    c.data.train = str(DATA / "tiny_train.csv")
    c.data.val = None
    c.data.test = None
    c.train.seed = 0
    return c


@pytest.fixture
def write(tmp_path):
    """write("name.csv", "text") -> Path of a new file in tmp_path."""
    def _write(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        return p
    return _write
