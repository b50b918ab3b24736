"""Data augmentation, training split only, with PIL, numpy and torch (no torchvision: ASSETS.md).

Images, per example, on the PIL image before it is resized to the model's input (the
`ImagePreprocessor.train_transform` slot): random resized crop (Szegedy et al. 2015), horizontal
flip, colour jitter. Images, per batch (a callback on `on_batch_start`): MixUp (Zhang et al. 2018)
and CutMix (Yun et al. 2019); labels become soft, (B, C) float, which `F.cross_entropy` accepts as
class probabilities. Text, per example, on token ids: word dropout and token masking.

Randomness comes from torch's global generator, which checkpoints save and restore, so a resumed
run draws the same crops and masks as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import Dataset

from ..errors import ConfigError


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


# ---- images, per example ---------------------------------------------------------------------

def random_resized_crop(img: Image.Image, min_scale: float = 0.35, ratio=(3 / 4, 4 / 3)) -> Image.Image:
    """Crop an area share in [min_scale, 1] with aspect ratio in `ratio` (log-uniform), resized back to
    the image's size, so the preprocessor's resize then treats it like any other image."""
    w, h = img.size
    for _ in range(10):
        area = w * h * _uniform(min_scale, 1.0)
        aspect = math.exp(_uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(torch.randint(0, w - cw + 1, ())), int(torch.randint(0, h - ch + 1, ()))
            return img.resize((w, h), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    return img                                           # no fitting crop in 10 tries: keep the image


def hflip(img: Image.Image, p: float = 0.5) -> Image.Image:
    return ImageOps.mirror(img) if float(torch.rand(())) < p else img


def color_jitter(img: Image.Image, strength: float) -> Image.Image:
    """Brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s]."""
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(_uniform(max(0.0, 1 - strength), 1 + strength))
    return img


def image_train_transform(data_cfg) -> Optional[Callable[[Image.Image], Image.Image]]:
    """The per-example image augmentation the config asks for, or None."""
    steps = []
    if data_cfg.random_resized_crop:
        steps.append(lambda im: random_resized_crop(im, data_cfg.crop_min_scale))
    if data_cfg.hflip:
        steps.append(hflip)
    if data_cfg.color_jitter:
        steps.append(lambda im: color_jitter(im, data_cfg.color_jitter))
    if not steps:
        return None

    def transform(img: Image.Image) -> Image.Image:
        for step in steps:
            img = step(img)
        return img
    return transform


# ---- images, per batch -----------------------------------------------------------------------

def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float, cutmix: bool):
    """MixUp or CutMix of a batch x (B, 3, S, S) with labels y (B,) -> (x', soft labels (B, C), lam)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0]).to(x.device)
    if cutmix:                                       # a box of area share 1 - lam from image perm[i]
        s_h, s_w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(s_h * cut), int(s_w * cut)
        cy, cx = int(torch.randint(0, s_h, ())), int(torch.randint(0, s_w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, s_h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, s_w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (s_h * s_w)  # the exact share of the box actually pasted
    else:
        x = lam * x + (1 - lam) * x[perm]
    onehot = F.one_hot(y, num_classes).float()
    return x, lam * onehot + (1 - lam) * onehot[perm], lam


class MixBatch:
    """MixUp / CutMix on every training batch (before the forward pass). With both on, each batch
    uses one of the two, chosen with probability 1/2 (timm's `switch_prob`)."""

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
        self.num_classes, self.mixup_alpha, self.cutmix_alpha = num_classes, mixup_alpha, cutmix_alpha

    def on_batch_start(self, ctx, batch: dict) -> None:
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or float(torch.rand(())) < 0.5)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        # The loop then runs the model and the loss on this same dict: replace its entries in place.
        batch["pixel_values"], batch["labels"], _ = mix_batch(batch["pixel_values"], batch["labels"],
                                                              self.num_classes, alpha, use_cutmix)


# ---- text, per example -----------------------------------------------------------------------

class TextAugmented(Dataset):
    """Word dropout and token masking on the token ids of `base`'s examples, fresh each time an
    example is read. Special tokens ([CLS], [SEP], BOS/EOS) are never touched, and an example keeps
    at least one real token."""

    def __init__(self, base: Dataset, special_ids: set[int], mask_id: int, drop: float, mask: float):
        self.base, self.special, self.mask_id, self.drop, self.mask = base, special_ids, mask_id, drop, mask

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        ids = list(item["input_ids"])
        r_drop, r_mask = torch.rand(len(ids)).tolist(), torch.rand(len(ids)).tolist()
        out = []
        for tok, d, m in zip(ids, r_drop, r_mask):
            if tok in self.special:
                out.append(tok)
            elif d >= self.drop:
                out.append(self.mask_id if m < self.mask else tok)
        if all(t in self.special for t in out):
            out = ids
        item["input_ids"] = out
        return item


# ---- wiring ------------------------------------------------------------------------------------

def active_augmentations(data_cfg) -> list[str]:
    """Names of the augmentations the config turns on."""
    on = [("random_resized_crop", data_cfg.random_resized_crop), ("hflip", data_cfg.hflip),
          ("color_jitter", data_cfg.color_jitter > 0), ("mixup", data_cfg.mixup_alpha > 0),
          ("cutmix", data_cfg.cutmix_alpha > 0), ("word_dropout", data_cfg.word_dropout > 0),
          ("token_mask", data_cfg.token_mask > 0)]
    return [name for name, active in on if active]


def check_augmentation(cfg) -> None:
    """ConfigError when an augmentation does not fit the task or a value is out of range."""
    d = cfg.data
    for key in ("word_dropout", "token_mask"):
        v = getattr(d, key)
        if not 0 <= v < 1:
            raise ConfigError(f"data.{key}: {v!r} is not allowed; it must be in [0, 1).")
    for key in ("mixup_alpha", "cutmix_alpha", "color_jitter"):
        v = getattr(d, key)
        if v < 0:
            raise ConfigError(f"data.{key}: {v!r} is not allowed; it must be >= 0 (0: off).")
    if not 0 < d.crop_min_scale <= 1:
        raise ConfigError(f"data.crop_min_scale: {d.crop_min_scale!r} is not allowed; it must be in (0, 1].")
    image = [a for a in active_augmentations(d) if a not in ("word_dropout", "token_mask")]
    text = [a for a in active_augmentations(d) if a in ("word_dropout", "token_mask")]
    if image and cfg.task != "image_classification":
        raise ConfigError(f"data.{image[0]} augments images; task {cfg.task!r} is not image_classification.")
    if text and cfg.task not in ("classification", "multilabel", "regression"):
        raise ConfigError(f"data.{text[0]} augments text for classification and regression; task "
                          f"{cfg.task!r} is not one of them.")


def augment_bundle(bundle, preprocessor, cfg):
    """`bundle` with its training split augmented as the config says (the other splits untouched)."""
    from .images import ImageDataset

    check_augmentation(cfg)
    d = cfg.data
    if bundle.modality == "image":
        transform = image_train_transform(d)
        if transform is None:
            return bundle
        spec = getattr(preprocessor, "to_preprocessor", None)
        pre = spec(train_transform=transform) if spec else dataclasses.replace(preprocessor, train_transform=transform)
        train = ImageDataset(bundle.train.images, bundle.train.targets, pre, train=True)
        return dataclasses.replace(bundle, train=train)
    if d.word_dropout or d.token_mask:
        special = set(getattr(preprocessor, "all_special_ids", []) or [])
        mask_id = getattr(preprocessor, "mask_token_id", None)
        mask_id = mask_id if mask_id is not None else getattr(preprocessor, "unk_token_id", 0)
        return dataclasses.replace(bundle, train=TextAugmented(bundle.train, special, mask_id, d.word_dropout,
                                                               d.token_mask))
    return bundle


def batch_augmentations(cfg, num_labels: Optional[int]) -> list:
    """Callbacks that augment whole batches (MixUp / CutMix), if the config asks for them."""
    d = cfg.data
    if d.mixup_alpha > 0 or d.cutmix_alpha > 0:
        return [MixBatch(num_labels, d.mixup_alpha, d.cutmix_alpha)]
    return []
