"""A name from a config or the CLI that becomes a folder (run, adapter, compare variant) is one path
component: `run_name=../../escaped` once wrote a run folder two levels above output_dir."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tunewright.config.load import config_from_dict
from tunewright.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
BAD = ["../../escaped", "../x", "a/b", "/tmp/absolute", "..", ".", "a\\b", "", "x" * 256, "nul\x00byte"]


@pytest.mark.parametrize("name", BAD)
def test_run_name_must_be_one_component(name):
    with pytest.raises(ConfigError, match="run_name"):
        config_from_dict({"run_name": name})


@pytest.mark.parametrize("name", ["../up", "a/b", ".."])
def test_adapter_name_must_be_one_component(name):
    with pytest.raises(ConfigError, match="peft.adapter_name"):
        config_from_dict({"peft": {"adapter_name": name}})


def test_plain_names_pass():
    cfg = config_from_dict({"run_name": "r8_lora-2026.12", "peft": {"adapter_name": "sports"}})
    assert cfg.run_name == "r8_lora-2026.12" and cfg.peft.adapter_name == "sports"


def test_compare_variant_names_are_checked():
    from tunewright.compare import variants_for
    cfg = config_from_dict({"compare": [{"name": "../../out", "method": "lora"}]})
    with pytest.raises(ConfigError, match="variant name"):
        variants_for(cfg, None)


def test_cli_refuses_and_writes_nothing_outside(tmp_path):
    out = tmp_path / "a" / "b"
    out.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "tunewright.cli.main", "train", str(REPO / "configs" / "tiny.yaml"),
                           f"output_dir={out}", "run_name=../../escaped", "train.progress=none"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "run_name: '../../escaped' must be one folder name" in proc.stderr
    assert not (tmp_path / "escaped").exists() and sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]
