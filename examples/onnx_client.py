"""Classify texts with a `tunewright export` folder, using only onnxruntime, tokenizers and numpy (no torch, no
tunewright).  python examples/onnx_client.py EXPORT_DIR "first text" "second text" ...  -> one JSON line each."""
import json, sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

folder, texts = Path(sys.argv[1]), sys.argv[2:]
meta = json.loads((folder / "deploy.json").read_text())
tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(meta["max_length"])                                 # as training truncated
ids = [e.ids for e in tok.encode_batch(texts)]
T = max(map(len, ids))
input_ids = np.array([r + [meta["pad_id"]] * (T - len(r)) for r in ids], dtype=np.int64)     # (B, T)
mask = np.array([[1] * len(r) + [0] * (T - len(r)) for r in ids], dtype=np.int64)            # (B, T)
logits = ort.InferenceSession(str(folder / "model.onnx")).run(["logits"], {"input_ids": input_ids, "attention_mask": mask})[0]
probs = np.exp(logits - logits.max(-1, keepdims=True))
probs /= probs.sum(-1, keepdims=True)
for text, p in zip(texts, probs):
    print(json.dumps({"input": text, "label": meta["label_names"][int(p.argmax())], "score": round(float(p.max()), 6)}))
