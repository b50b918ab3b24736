"""Where tunewright keeps what it computes once per machine (converted models, tiny models, the
precision probe): one folder, chosen here only."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """tunewright's cache: ``$TUNEWRIGHT_CACHE``, else ``$XDG_CACHE_HOME/tunewright``, else ``~/.cache/tunewright``.

    An empty variable counts as unset, and ``~`` is expanded."""
    if os.environ.get("TUNEWRIGHT_CACHE"):
        return Path(os.environ["TUNEWRIGHT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tunewright"
