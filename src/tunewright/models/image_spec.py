"""What an image model expects as input, as plain data that also preprocesses.

``load_model`` returns an ``ImageSpec`` as the preprocessor of image models. It holds numbers,
not code, so it is saved in ``tunewright_model.json`` and a reloaded model preprocesses exactly
as in training. Calling it (``spec(image, train=False) -> (3, size, size)``) runs the data
package's ``ImagePreprocessor`` built from it, which is what ``build_data`` expects:

1. decode to RGB; 2. resize the shorter side to ``size`` (bilinear), center-crop ``size x size``;
3. to float in [0, 1], channels first; 4. ``(x - mean) / std`` per channel.

EfficientNet-Lite was trained on ``x*2-1``, i.e. mean = std = 0.5 (``scale == "minus_one_to_one"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

SCALE_PRESETS = {  # name -> (mean, std), each per RGB channel; names match data.images.NAMED
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "minus_one_to_one": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass(frozen=True)
class ImageSpec:
    size: int = 224                                      # side of the square model input, pixels
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)    # subtracted from x in [0, 1], per channel
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def preset(cls, scale: str, size: int = 224) -> "ImageSpec":
        mean, std = SCALE_PRESETS[scale]
        return cls(size=size, mean=mean, std=std)

    @property
    def scale(self) -> str:
        """The preset these numbers match ("none" = keep [0, 1]), or "mean_std"."""
        for name, (mean, std) in SCALE_PRESETS.items():
            if tuple(self.mean) == mean and tuple(self.std) == std:
                return name
        return "mean_std"

    def normalize(self, x):
        """``(x - mean) / std`` for ``x`` in [0, 1] shaped ``(..., 3, H, W)`` (numpy array or tensor)."""
        import numpy as np
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        if hasattr(x, "new_tensor"):  # torch.Tensor
            mean, std = x.new_tensor(mean), x.new_tensor(std)
        return (x - mean) / std

    def to_preprocessor(self, train_transform=None):
        """The data package's ``ImagePreprocessor`` for this spec (augmentation plugs in as ``train_transform``)."""
        from tunewright.data.images import ImagePreprocessor
        scale = self.scale
        normalize = scale if scale != "mean_std" else (tuple(self.mean), tuple(self.std))
        return ImagePreprocessor(size=self.size, normalize=normalize, train_transform=train_transform)

    @cached_property
    def _preprocessor(self):
        return self.to_preprocessor()

    def __call__(self, image, train: bool = False):
        """A path, uint8 array or PIL image -> float32 ``(3, size, size)``, normalised."""
        return self._preprocessor(image, train=train)

    def to_dict(self) -> dict:
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "ImageSpec":
        return cls(size=int(d["size"]), mean=tuple(d["mean"]), std=tuple(d["std"]))
