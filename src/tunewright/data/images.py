"""Image preprocessing with PIL and numpy only (torchvision does not import beside torch 2.13
CPU here, see ASSETS.md).

Memory: Fashion-MNIST's 60k images at 224x224x3 float32 would take 36 GB, so nothing is
materialised. ``ImageDataset`` keeps the small uint8 sources (or file paths) and resizes in
``__getitem__``; 28x28 -> 224x224 bilinear costs well under a millisecond per image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Named normalisations, applied to x in [0, 1] of shape (3, S, S).
NAMED = ("minus_one_to_one", "imagenet", "none")

Normalize = Union[str, tuple, Callable[[torch.Tensor], torch.Tensor], None]


def to_pil(image: Any) -> Image.Image:
    """A path, a uint8 array (H, W) or (H, W, 3), or a PIL image -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        img = image
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0..255), got {image.dtype}")
        img = Image.fromarray(image)
    else:
        with Image.open(image) as f:
            f.load()
            img = f.copy()
    return img if img.mode == "RGB" else img.convert("RGB")   # grayscale/palette/RGBA -> RGB


@dataclass
class ImagePreprocessor:
    """PIL image -> float32 tensor (3, size, size), scaled the way the model expects.

    Steps: to RGB; ``train_transform`` (training split only, None: none; augmentation plugs in
    here); resize the short side to ``size`` (bilinear) and centre-crop a square (for square
    sources this is a plain resize); HWC uint8 -> CHW float in [0, 1]; ``normalize``:

    - ``"minus_one_to_one"``: ``x * 2 - 1``, EfficientNet-Lite's input range;
    - ``"imagenet"``: ``(x - mean) / std`` with the ImageNet channel statistics;
    - ``(mean, std)``: per-channel sequences of 3 floats; ``"none"``/None: keep [0, 1];
    - a callable on the (3, S, S) tensor.
    """

    size: int = 224
    normalize: Normalize = "minus_one_to_one"
    train_transform: Optional[Callable[[Image.Image], Image.Image]] = None

    def __post_init__(self) -> None:
        if isinstance(self.normalize, str) and self.normalize not in NAMED:
            raise ValueError(f"normalize={self.normalize!r}: use one of {NAMED}, "
                             "(mean, std) or a callable")

    def resize(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        s = self.size
        if (w, h) == (s, s):
            return img
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - s) // 2, (nh - s) // 2
        return img.crop((left, top, left + s, top + s)) if (nw, nh) != (s, s) else img

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """x: (3, S, S) in [0, 1] -> the model's range."""
        n = self.normalize
        if n is None or n == "none":
            return x
        if n == "minus_one_to_one":
            return x * 2 - 1
        if isinstance(n, str):            # "imagenet"
            n = (IMAGENET_MEAN, IMAGENET_STD)
        if isinstance(n, tuple):
            mean = torch.tensor(n[0], dtype=x.dtype).view(-1, 1, 1)
            std = torch.tensor(n[1], dtype=x.dtype).view(-1, 1, 1)
            return (x - mean) / std
        return n(x)

    def __call__(self, image: Any, train: bool = False) -> torch.Tensor:
        img = to_pil(image)
        if train and self.train_transform is not None:
            img = self.train_transform(img)
        img = self.resize(img)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # (S, S, 3) uint8
        x = x.permute(2, 0, 1).float().div_(255.0)                    # (3, S, S) in [0, 1]
        return self.scale(x).contiguous()


class ImageDataset(Dataset):
    """Lazily preprocessed images: item i is {"pixel_values": (3, S, S) float32, "labels": y}.

    ``images`` holds file paths or small uint8 arrays; ``targets`` is None for unlabelled
    prediction inputs. ``train=True`` applies the preprocessor's ``train_transform``.
    """

    def __init__(self, images: Sequence[Any], targets: Optional[Sequence[Any]],
                 preprocessor: Callable[..., torch.Tensor], train: bool = False):
        self.images, self.targets = list(images), targets
        self.preprocessor, self.train = preprocessor, train

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        item = {"pixel_values": self.preprocessor(self.images[i], train=self.train)}
        if self.targets is not None:
            item["labels"] = self.targets[i]
        return item
