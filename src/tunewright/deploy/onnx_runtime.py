"""`OnnxClassifier(export_dir)`: an exported graph with its tokenizer and labels, in numpy, torch-free.

This is what `tunewright serve --backend onnx` and `tunewright bench-infer` run, and what
examples/onnx_client.py does in 20 lines. Tokenization uses the `tokenizers` library on the exported
tokenizer.json, truncated to deploy.json's max_length, so the ids equal the ones transformers gave in training
(tests/unit/deploy/test_onnx_export.py checks that). Images follow deploy.json's preprocessing with PIL.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError

FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def session_options(threads: int | None = None):
    """The one place onnxruntime sessions are configured (export self-check, bench-infer, serve, this class):
    every graph optimization, `threads` intra-op threads (default: the cores), and no spin-waiting where
    OMP_WAIT_POLICY=PASSIVE says the process shares its CPU (what `tunewright serve` sets; torch's OpenMP threads
    then sleep too, so both runtimes are measured alike)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OnnxClassifier:
    """`predict(inputs) -> (labels, probs (N, C))`; `logits(inputs) -> (N, C)`. Inputs: texts, or images (paths,
    PIL images or uint8 arrays) for an image graph."""

    def __init__(self, export_dir, variant: str = "fp32", threads: int | None = None):
        import onnxruntime as ort

        self.dir = Path(export_dir)
        meta_path = self.dir / "deploy.json"
        if not meta_path.is_file():
            raise ModelLoadError(f"{meta_path} is missing: {self.dir} is not a `tunewright export` folder")
        self.meta = json.loads(meta_path.read_text())
        if variant not in FILES:
            raise ModelLoadError(f"ONNX variant {variant!r}: use one of {sorted(FILES)}")
        path = self.dir / FILES[variant]
        if not path.is_file():
            hint = " (export with --quantize int8)" if variant == "int8" else ""
            raise ModelLoadError(f"{path} is missing{hint}")
        self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        self.path, self.variant = path, variant
        self.labels = self.meta.get("label_names")
        self.modality = self.meta["modality"]
        self.tokenizer = None
        if self.modality == "text":
            from tokenizers import Tokenizer
            self.tokenizer = Tokenizer.from_file(str(self.dir / self.meta.get("tokenizer", "tokenizer.json")))
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(int(self.meta["max_length"]))

    def encode(self, texts: list[str]) -> dict:
        """texts -> input_ids, attention_mask (B, T) int64, right-padded to the longest row (as Collator does)."""
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        T = max(len(r) for r in ids)
        input_ids = np.full((len(ids), T), int(self.meta["pad_id"]), dtype=np.int64)
        mask = np.zeros((len(ids), T), dtype=np.int64)
        for i, r in enumerate(ids):
            input_ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def pixels(self, images) -> dict:
        """images -> pixel_values (B, 3, S, S) float32, by deploy.json's preprocessing steps."""
        from PIL import Image
        p = self.meta["preprocessing"]
        s = int(p["size"])
        mean = np.asarray(p["mean"], np.float32).reshape(3, 1, 1)
        std = np.asarray(p["std"], np.float32).reshape(3, 1, 1)
        out = []
        for img in images:
            img = img if isinstance(img, Image.Image) else (Image.fromarray(img) if isinstance(img, np.ndarray)
                                                           else Image.open(img))
            img = img.convert("RGB")
            w, h = img.size
            scale = s / min(w, h)
            nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
            if (w, h) != (s, s):
                img = img.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - s) // 2, (nh - s) // 2
                img = img.crop((left, top, left + s, top + s))
            x = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0        # (3, S, S) in [0, 1]
            out.append((x - mean) / std)
        return {"pixel_values": np.stack(out).astype(np.float32)}

    def feeds(self, inputs) -> dict:
        return self.encode(inputs) if self.modality == "text" else self.pixels(inputs)

    def logits(self, inputs) -> np.ndarray:
        return self.run(self.feeds(inputs))

    def run(self, feeds: dict) -> np.ndarray:
        return self.session.run(["logits"], feeds)[0]

    def predict(self, inputs) -> tuple[list[str], np.ndarray]:
        probs = softmax(self.logits(inputs))
        return [self.labels[i] for i in probs.argmax(-1)], probs

    def size_bytes(self) -> int:
        return self.path.stat().st_size
