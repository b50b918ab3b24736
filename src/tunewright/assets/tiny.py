"""Tiny models built from a config, for tests and quick checks (`model.name: tiny-bert | tiny-llama`).

They are NOT pretrained: the weights are a seeded random init (seed 0), written once to the cache as an
ordinary HF folder so every loader path (tokenizer, pooling, save/reload) is the same one real models
take. They borrow the packaged MiniLM's WordPiece tokenizer, so no download is ever needed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

CONFIGS = {
    # BertModel: 2 layers, hidden 32; ~1M params, almost all in the 30522 x 32 embedding.
    "tiny-bert": {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 32, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 512,
                  "vocab_size": 30522, "type_vocab_size": 2, "pad_token_id": 0},
    # LlamaForCausalLM: 2 layers, hidden 32, tied embeddings.
    "tiny-llama": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32,
                   "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "intermediate_size": 64, "max_position_embeddings": 512, "vocab_size": 30522,
                   "tie_word_embeddings": True, "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102},
}


def build_tiny(name: str, out_dir: Path, tokenizer_dir: Path) -> Path:
    """Write `name`'s config, seeded random weights and the borrowed tokenizer to `out_dir` (atomically)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    if (out_dir / "model.safetensors").is_file():
        return out_dir
    spec = dict(CONFIGS[name])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    cls = AutoModelForCausalLM if name.endswith("llama") else AutoModel
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = cls.from_config(config)
    torch.random.set_rng_state(state)  # building an asset must not disturb the caller's RNG stream
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out_dir.parent))
    model.save_pretrained(tmp)
    for f in TOKENIZER_FILES:
        if (tokenizer_dir / f).is_file():
            shutil.copy(tokenizer_dir / f, tmp / f)
    (tmp / "TINY_MODEL.json").write_text(json.dumps({"name": name, "pretrained": False, "seed": 0}))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the cache is shared like any HF cache
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    try:
        os.rename(tmp, out_dir)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
