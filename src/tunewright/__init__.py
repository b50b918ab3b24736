"""tunewright: fine-tune any pretrained PyTorch model, measured at every step.

    import tunewright
    result = tunewright.train("configs/demo.yaml")           # or a dict, or a Config
    result.summary["test"]["accuracy"], result.run_dir

Importing tunewright changes nothing in the process. On a CPU, `tunewright.huge_pages.request()`,
called before torch's first tensor, puts torch's CPU allocator on huge pages as the `tunewright`
command does (tunewright/huge_pages.py).
"""
from .version import __version__

from .config import Config, load_config


def train(config, overrides=None, **kwargs):
    """Fine-tune as `config` says (a YAML path, dict or Config; keyword sections override it).
    Returns a RunResult with `run_dir` and `summary`. See tunewright.run.train."""
    from .run import train as _train
    return _train(config, overrides, **kwargs)


__all__ = ["Config", "load_config", "train", "__version__"]
