"""The mode of a file written through a temp name: mkstemp/mkdtemp make 0600/0700 files, which a
finished model or cache folder should not keep."""
from __future__ import annotations

import os


def umask_mode(kind: int = 0o666) -> int:
    """The mode a normal ``open()`` (0o666) or ``mkdir()`` (0o777) would give under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return kind & ~mask
