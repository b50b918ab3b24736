"""tunewright: fine-tune any pretrained PyTorch model, measured at every step.

    import tunewright
    result = tunewright.train("configs/demo.yaml")           # or a dict, or a Config
    result.summary["test"]["accuracy"], result.run_dir
"""
from .version import __version__

from . import huge_pages as _huge_pages  # noqa: E402

_huge_pages.request()  # before torch's first CPU allocation; why: tunewright/huge_pages.py

from .config import Config, load_config  # noqa: E402


def train(config, overrides=None, **kwargs):
    """Fine-tune as `config` says (a YAML path, dict or Config; keyword sections override it).
    Returns a RunResult with `run_dir` and `summary`. See tunewright.run.train."""
    from .run import train as _train
    return _train(config, overrides, **kwargs)


__all__ = ["Config", "load_config", "train", "__version__"]
