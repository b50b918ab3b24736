"""transformers' logging, quieted while tunewright loads or converts a model (used by assets/ and models/)."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_hf():
    """Silence transformers' per-load report and progress bars; we report what matters ourselves."""
    from transformers.utils import logging as hf_logging
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
