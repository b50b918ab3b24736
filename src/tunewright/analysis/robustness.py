"""Input corruptions at three severities, to measure how a metric degrades.

Text (lowercased, punctuation-free packaged corpora): character noise (each non-space character,
with probability p, is deleted, replaced by a random letter or followed by an inserted one, p/3 each)
and word dropout (each word removed with probability p).
Images (float arrays in [0, 1], HWC or CHW): Gaussian noise, box blur, contrast reduction.
All are seeded pure functions, so a report is reproducible.
"""
from __future__ import annotations

import numpy as np

SEVERITIES = (1, 2, 3)
TEXT_CORRUPTIONS = {"char_noise": (0.03, 0.08, 0.15), "word_dropout": (0.1, 0.25, 0.5)}
IMAGE_CORRUPTIONS = {"gaussian_noise": (0.04, 0.08, 0.16), "blur": (1, 2, 3), "contrast": (0.6, 0.4, 0.2)}


def char_noise(text: str, p: float, rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for ch in text:
        r = rng.random()
        if ch == " " or r >= p:
            out.append(ch)
        elif r < p / 3:
            continue                                            # delete
        elif r < 2 * p / 3:
            out.append(letters[rng.integers(26)])               # substitute
        else:
            out.append(ch + letters[rng.integers(26)])          # insert
    return "".join(out)


def word_dropout(text: str, p: float, rng: np.random.Generator) -> str:
    words = text.split()
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept or words[:1])


def corrupt_texts(texts: list[str], kind: str, severity: int, seed: int = 0) -> list[str]:
    p = TEXT_CORRUPTIONS[kind][severity - 1]
    rng = np.random.default_rng(seed + severity)
    fn = char_noise if kind == "char_noise" else word_dropout
    return [fn(t, p, rng) for t in texts]


def corrupt_image(x: np.ndarray, kind: str, severity: int, seed: int = 0) -> np.ndarray:
    """x float in [0, 1], (H, W) or (H, W, C); returns the same shape."""
    level = IMAGE_CORRUPTIONS[kind][severity - 1]
    if kind == "gaussian_noise":
        return np.clip(x + np.random.default_rng(seed + severity).normal(0, level, x.shape), 0, 1)
    if kind == "contrast":
        m = x.mean(axis=(0, 1), keepdims=True)
        return np.clip((x - m) * level + m, 0, 1)
    k = 2 * int(level) + 1                                      # box blur, k x k, edge-padded
    pad = [(level, level), (level, level)] + [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x, pad, mode="edge")
    out = np.zeros_like(x, dtype=np.float64)
    for dy in range(k):
        for dx in range(k):
            out += xp[dy:dy + x.shape[0], dx:dx + x.shape[1]]
    return out / (k * k)
