"""Augmentation: per-example image ops keep the size, MixUp/CutMix give soft labels the loss accepts,
text ops never touch special tokens, and config errors name the key."""
import numpy as np
import pytest
import torch
from PIL import Image

from tunewright.config import Config
from tunewright.data.augment import (TextAugmented, check_augmentation, color_jitter, hflip, image_train_transform,
                                     mix_batch, random_resized_crop)
from tunewright.errors import ConfigError
from tunewright.training.losses import classification_loss


def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8))


def test_image_ops_keep_size_and_change_pixels():
    torch.manual_seed(0)
    img = image()
    for out in (random_resized_crop(img, 0.3), hflip(img, p=1.0), color_jitter(img, 0.5)):
        assert out.size == img.size and out.mode == "RGB"
        assert not np.array_equal(np.asarray(out), np.asarray(img))
    assert np.array_equal(np.asarray(hflip(img, p=1.0)), np.asarray(img)[:, ::-1])


def test_image_transform_is_reproducible_from_torch_seed():
    cfg = Config(task="image_classification")
    cfg.data.random_resized_crop, cfg.data.hflip, cfg.data.color_jitter = True, True, 0.3
    t = image_train_transform(cfg.data)
    torch.manual_seed(1)
    a = np.asarray(t(image()))
    torch.manual_seed(1)
    assert np.array_equal(a, np.asarray(t(image())))
    assert image_train_transform(Config().data) is None


@pytest.mark.parametrize("cutmix", [False, True])
def test_mix_batch_soft_labels(cutmix):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    mixed, soft, lam = mix_batch(x, y, 4, alpha=1.0, cutmix=cutmix)
    assert mixed.shape == x.shape and soft.shape == (8, 4)
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert 0.0 <= lam <= 1.0 and (soft.max(1).values >= 0.5 - 1e-6).all()
    loss = classification_loss(torch.randn(8, 4), {"labels": soft}, label_smoothing=0.1)
    assert torch.isfinite(loss)


def test_text_augmentation_keeps_special_tokens():
    base = [{"input_ids": [101] + list(range(1000, 1020)) + [102], "labels": 1}]
    torch.manual_seed(0)
    out = TextAugmented(base, special_ids={101, 102}, mask_id=103, drop=0.3, mask=0.3)[0]
    ids = out["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and out["labels"] == 1
    assert len(ids) < 22 and 103 in ids
    assert base[0]["input_ids"][1] == 1000                 # the source example is not changed
    everything = TextAugmented(base, special_ids={101, 102}, mask_id=103, drop=0.999, mask=0.0)
    assert len(everything[0]["input_ids"]) >= 3            # never left with only special tokens


@pytest.mark.parametrize("key, value, task, message", [
    ("word_dropout", 1.5, "classification", r"data.word_dropout: 1.5 is not allowed; it must be in \[0, 1\)"),
    ("mixup_alpha", 0.2, "classification", r"data.mixup augments images; task 'classification'"),
    ("token_mask", 0.1, "image_classification", r"data.token_mask augments text"),
    ("crop_min_scale", 0.0, "image_classification", r"data.crop_min_scale: 0.0 is not allowed"),
])
def test_config_errors_name_key_value_and_allowed(key, value, task, message):
    cfg = Config(task=task)
    setattr(cfg.data, key, value)
    with pytest.raises(ConfigError, match=message):
        check_augmentation(cfg)
