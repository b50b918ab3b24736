"""Secrets never reach config.yaml, the model's JSON, the trackers or the report in clear; a secret given
as ${env:NAME} is read only where it is used, so a saved run rebuilds itself."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tunewright.config import Config, to_dict
from tunewright.config.secrets import REDACTED, redact, resolve_env, secret_keys
from tunewright.errors import ConfigError

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn
    SEEN = {}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.feature_dim = 4

        def forward(self, x):
            return self.pool(torch.relu(self.conv(x))).flatten(1)

    def net(api_token, hf_key):
        SEEN.update(api_token=api_token, hf_key=hf_key)   # what the factory was really given
        return Net()
''')
LITERAL, FROM_ENV, ENV_ONLY = "lit-s3cr3t-1111", "env-s3cr3t-2222", "env-s3cr3t-3333"


def test_redact_hides_literal_secrets_and_url_credentials_only():
    tree = {"model": {"factory_kwargs": {"api_token": "abc", "HF_KEY": "def", "db_password": "ghi", "n_tokens": 3,
                                         "ref_token": "${env:X}", "name": "plain"}},
            "uri": "https://alice:pa55@example.org/mlflow", "list": ["http://u:p@h", "ok"]}
    out = redact(tree)
    fk = out["model"]["factory_kwargs"]
    assert fk["api_token"] == fk["HF_KEY"] == fk["db_password"] == REDACTED
    assert fk["n_tokens"] == 3 and fk["ref_token"] == "${env:X}" and fk["name"] == "plain"
    assert out["uri"] == "https://<redacted>@example.org/mlflow" and out["list"] == ["http://<redacted>@h", "ok"]
    assert tree["model"]["factory_kwargs"]["api_token"] == "abc"                      # a copy: the input is untouched
    assert sorted(secret_keys(tree)) == ["model.factory_kwargs.HF_KEY", "model.factory_kwargs.api_token",
                                         "model.factory_kwargs.db_password"]
    assert redact(to_dict(Config())) == to_dict(Config())                            # no default looks secret


def test_resolve_env_names_the_key(monkeypatch):
    monkeypatch.setenv("TW_T", "v")
    assert resolve_env({"a": "${env:TW_T}", "b": ["${env:TW_T}", 1]}, "k") == {"a": "v", "b": ["v", 1]}
    monkeypatch.delenv("TW_T")
    with pytest.raises(ConfigError, match=r"k\.a: \$\{env:TW_T\} names the environment variable TW_T"):
        resolve_env({"a": "${env:TW_T}"}, "k")
    with pytest.raises(ConfigError, match=r"k\.a was a secret written literally"):
        resolve_env({"a": REDACTED}, "k")


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_a_run_writes_no_secret_anywhere(tmp_path, monkeypatch):
    (tmp_path / "tw_secret_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("TW_TEST_KEY", FROM_ENV)                # read through ${env:TW_TEST_KEY}
    for name in ("HF_TOKEN", "WANDB_API_KEY", "MY_DB_PASSWORD", "SOME_SECRET"):
        monkeypatch.setenv(name, ENV_ONLY)                     # never referenced: must never be copied anywhere
    monkeypatch.setenv("WANDB_MODE", "offline")
    import tunewright
    out = tmp_path / "runs"
    cfg = {"output_dir": str(out), "run_name": "s", "task": "image_classification",
           "model": {"name": "tw_secret_factory:net",
                     "factory_kwargs": {"api_token": LITERAL, "hf_key": "${env:TW_TEST_KEY}"}},
           "data": {"train": "digits", "train_subset": 64, "test_subset": 16, "image_size": 8},
           "train": {"epochs": 1, "batch_size": 16, "progress": "none"}, "tracking": ["tensorboard", "mlflow"]}
    run = tunewright.train(cfg)
    import tw_secret_factory
    assert tw_secret_factory.SEEN == {"api_token": LITERAL, "hf_key": FROM_ENV}   # the factory got the real values
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())["model"]["factory_kwargs"]
    assert saved == {"api_token": REDACTED, "hf_key": "${env:TW_TEST_KEY}"}
    assert any("model.factory_kwargs.api_token" in n for n in run.summary["notes"])
    from tunewright.run import load_run
    with pytest.raises(ConfigError, match="model.factory_kwargs.api_token was a secret written literally"):
        load_run(run.run_dir)                                  # it never kept the literal, so it says so
    # Both given as references: the saved run rebuilds itself, and the report can be drawn.
    cfg["run_name"], cfg["model"]["factory_kwargs"]["api_token"] = "s2", "${env:TW_TEST_KEY}"
    run2 = tunewright.train(cfg)
    proc = subprocess.run([sys.executable, "-m", "tunewright.cli.main", "report", str(run2.run_dir), "--no-analysis"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (run2.run_dir / "report.html").is_file() and load_run(run2.run_dir)[1] is not None
    blob = _all_bytes(out)                                      # config.yaml, model JSON, mlflow.db, events, report
    for secret in (LITERAL, FROM_ENV, ENV_ONLY):
        assert secret.encode() not in blob, secret
