"""build_data: tokenization, collate shapes, LM and instruction labels, images, tracing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tunewright.data import (IGNORE_INDEX, Collator, ImagePreprocessor, build_data,
                             encode_inputs, epoch_batches, read_data)
from tunewright.data.build import DataBundle

DATA = Path(__file__).resolve().parents[2] / "data"     # tests/data


def test_text_bundle_and_collate(cfg, tokenizer):
    cfg.data.val, cfg.data.test = str(DATA / "tiny_val.csv"), str(DATA / "tiny_test.csv")
    b = build_data(read_data(cfg), tokenizer, cfg)
    assert isinstance(b, DataBundle) and b.num_labels == 3 and b.class_counts == [20, 20, 20]
    assert (len(b.train), len(b.val), len(b.test)) == (60, 15, 15)
    ex = b.train[0]
    assert set(ex) == {"input_ids", "labels"} and len(ex["input_ids"]) == b.lengths["train"][0]
    assert b.source["test"][0] == (str(DATA / "tiny_test.csv"), 2)
    first_test_line = (DATA / "tiny_test.csv").read_text().splitlines()[1]
    assert first_test_line.startswith(b.raw_inputs["test"][0].split(",")[0].strip('"'))
    idx = [0, 1, 2, 3]
    batch = b.collate([b.train[i] for i in idx])
    longest = max(b.lengths["train"][i] for i in idx)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (4, longest)
    assert batch["labels"].dtype == torch.int64 and batch["labels"].shape == (4,)
    for row, i in enumerate(idx):
        n = b.lengths["train"][i]
        assert batch["attention_mask"][row].sum() == n
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["input_ids"][row, :n].tolist() == b.train[i]["input_ids"]


def test_truncation_to_max_length(cfg, tokenizer):
    cfg.data.max_length = 5
    b = build_data(read_data(cfg), tokenizer, cfg)
    assert max(b.lengths["train"]) == 5


def test_max_length_never_exceeds_the_models_position_limit(cfg, tokenizer, monkeypatch):
    # A max_length above the model's limit would index past its position table; it is cut, with a note.
    cfg.data.max_length = 1000
    monkeypatch.setattr(tokenizer, "model_max_length", 4)
    b = build_data(read_data(cfg), tokenizer, cfg)
    assert max(b.lengths["train"]) == 4
    assert any("data.max_length 1000" in n and "limit of 4" in n for n in b.notes)
    assert encode_inputs(tokenizer, ["a b c d e f g h"], cfg)[0]["input_ids"].__len__() <= 4
    monkeypatch.setattr(tokenizer, "model_max_length", int(1e30))    # "unset": no limit but ours
    b = build_data(read_data(cfg), tokenizer, cfg)
    assert max(b.lengths["train"]) > 4 and not any("max_length" in n for n in b.notes)


def test_regression_and_multilabel_label_tensors():
    reg = Collator("regression")([{"input_ids": [1], "labels": 0.5},
                                  {"input_ids": [1, 2], "labels": 2.0}])
    assert reg["labels"].dtype == torch.float32 and reg["labels"].tolist() == [0.5, 2.0]
    ml = Collator("multilabel", num_labels=3)([{"input_ids": [1], "labels": [0, 2]},
                                               {"input_ids": [1], "labels": []}])
    assert ml["labels"].dtype == torch.float32
    assert ml["labels"].tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_causal_lm_text_labels_copy_inputs_and_pad_minus_100(cfg, tokenizer):
    cfg.task, cfg.data.train = "causal_lm", str(DATA / "tiny_lm.jsonl")
    raw = read_data(cfg)
    assert raw.label_names is None
    b = build_data(raw, tokenizer, cfg)
    assert b.num_labels is None and b.class_counts is None
    items = [b.train[i] for i in range(6)]
    assert all(it["labels"] == it["input_ids"] for it in items)
    batch = b.collate(items)
    mask = batch["attention_mask"].bool()
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][~mask] == IGNORE_INDEX).all()
    assert torch.equal(batch["labels"][mask], batch["input_ids"][mask])


def test_instruction_tuning_masks_only_the_prompt(cfg, chat_tokenizer):
    cfg.task, cfg.data.train = "causal_lm", str(DATA / "tiny_instruct.jsonl")
    raw = read_data(cfg)
    b = build_data(raw, chat_tokenizer, cfg)
    ex, it = raw.train[0], b.train[0]
    prompt = chat_tokenizer(f"<|user|> {ex.prompt} <|assistant|>",
                            add_special_tokens=False)["input_ids"]
    response = chat_tokenizer(ex.response, add_special_tokens=False)["input_ids"]
    eos = chat_tokenizer.eos_token_id
    assert it["input_ids"] == prompt + response + [eos]
    assert it["labels"] == [IGNORE_INDEX] * len(prompt) + response + [eos]
    assert it["input_ids"][len(prompt) - 1] == 4            # ends with <|assistant|>


def test_instruction_without_template_and_truncation(cfg, tokenizer):
    cfg.task, cfg.data.train = "causal_lm", str(DATA / "tiny_instruct.jsonl")
    cfg.data.max_length = 6
    raw = read_data(cfg)
    b = build_data(raw, tokenizer, cfg)
    for ex, i in zip(raw.train, range(len(b.train))):
        it = b.train[i]
        full = tokenizer(ex.response, add_special_tokens=False)["input_ids"] + [2]
        kept = [t for t in it["labels"] if t != IGNORE_INDEX]
        # the response keeps at least half the budget; the prompt gives way from its start
        assert len(it["input_ids"]) <= 6 and len(kept) >= 3 and kept == full[:len(kept)]
        assert it["labels"][:len(it["labels"]) - len(kept)] == [IGNORE_INDEX] * (6 - len(kept))


def test_image_preprocessor_shapes_and_scaling():
    gray = np.full((28, 28), 255, np.uint8)
    x = ImagePreprocessor(size=32)(gray)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x, torch.ones_like(x))                      # 255 -> 1 -> 1*2-1
    zero = ImagePreprocessor(size=16, normalize="none")(np.zeros((8, 12, 3), np.uint8))
    assert zero.shape == (3, 16, 16) and zero.abs().max() == 0        # non-square: crop
    mean_std = ImagePreprocessor(size=8, normalize=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert torch.allclose(mean_std(gray), torch.full((3, 8, 8), 2.0))
    calls = []
    pre = ImagePreprocessor(size=8, train_transform=lambda im: calls.append(1) or im)
    pre(gray), pre(gray, train=True)
    assert calls == [1]
    with pytest.raises(ValueError, match="normalize"):
        ImagePreprocessor(normalize="zscore")


def test_image_folder_bundle_is_lazy_and_traceable(cfg, tmp_path):
    for cls, value in (("dark", 0), ("light", 255)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            img = Image.fromarray(np.full((10, 10), value, np.uint8), "L")
            img.save(tmp_path / cls / f"{i}.png")
    cfg.task, cfg.data.train = "image_classification", str(tmp_path)
    cfg.data.val_fraction, cfg.data.test_fraction = 0.2, 0.2
    b = build_data(read_data(cfg), ImagePreprocessor(size=16), cfg)
    assert b.modality == "image" and b.lengths["train"] is None
    assert b.label_names == ["dark", "light"]
    batch = b.collate([b.train[i] for i in range(len(b.train))])
    assert batch["pixel_values"].shape == (len(b.train), 3, 16, 16)
    expected = torch.tensor([1.0 if b.label_names[t] == "light" else -1.0
                             for t in b.targets["train"]])
    assert torch.equal(batch["pixel_values"][:, 0, 0, 0], expected)
    assert all(p.endswith(".png") for p in b.raw_inputs["test"])


def test_encode_inputs_matches_training_tokenization(cfg, tokenizer):
    raw = read_data(cfg)
    b = build_data(raw, tokenizer, cfg)
    enc = encode_inputs(tokenizer, [raw.train[0].text], cfg)
    assert enc == [{"input_ids": b.train[0]["input_ids"]}]
    batch = b.collate(enc)
    assert "labels" not in batch and batch["input_ids"].shape[0] == 1
    img = encode_inputs(ImagePreprocessor(size=8), [np.zeros((4, 4), np.uint8)], cfg)
    assert img[0]["pixel_values"].shape == (3, 8, 8)


def test_bundle_drives_an_epoch(cfg, tokenizer):
    b = build_data(read_data(cfg), tokenizer, cfg)
    batches = epoch_batches(len(b.train), 8, 0, 0, lengths=b.lengths["train"])
    sizes = [b.collate([b.train[i] for i in idx])["input_ids"].shape[0] for idx in batches]
    assert sum(sizes) == len(b.train)


def test_wrong_preprocessor_for_text(cfg):
    with pytest.raises(TypeError, match="tokenizer"):
        build_data(read_data(cfg), ImagePreprocessor(), cfg)


def test_jsonl_causal_lm_needs_text_or_prompt(cfg, write):
    cfg.task = "causal_lm"
    cfg.data.train = str(write("x.jsonl", json.dumps({"body": "hello"}) + "\n"))
    from tunewright.errors import DataError
    with pytest.raises(DataError, match="prompt\\+response or text"):
        read_data(cfg)


@pytest.mark.parametrize("multiple,width", [(1, 5), (4, 8), (8, 8), (5, 5)])
def test_pad_to_multiple_rounds_the_batch_length_up_and_masks_the_extra(multiple, width):
    rows = [{"input_ids": [5, 6, 7, 8, 9], "labels": [5, 6, 7, 8, 9]}, {"input_ids": [5, 6], "labels": [5, 6]}]
    b = Collator("causal_lm", pad_id=0, pad_multiple=multiple)(rows)
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape == (2, width)
    assert b["attention_mask"].sum(1).tolist() == [5, 2]
    assert (b["labels"][0, 5:] == IGNORE_INDEX).all() and (b["labels"][1, 2:] == IGNORE_INDEX).all()
