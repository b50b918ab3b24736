"""Names that become one folder or file name (a run, an adapter, a compare variant): one path component.

A name from a config, a CLI argument or a saved file is joined under a folder the user chose
(`<output_dir>/<run_name>/`). `run_name: ../../x` or an absolute name would write outside it, so a
name is refused unless it is a single component: no separator, not `.` or `..`, no NUL, not empty,
and not so long that the file system refuses it. Folders the user names on purpose (`output_dir`,
`--output`) are paths and are not checked here.
"""
from __future__ import annotations

import os

from .errors import ConfigError

MAX_BYTES = 255          # NAME_MAX on Linux and macOS file systems


def check_name(value, key: str) -> str:
    """`value` when it is a safe single path component, else a ConfigError naming `key` and the value."""
    if not isinstance(value, str) or value.strip() == "":
        raise ConfigError(f"{key}: {value!r} is not a name; give a non-empty folder name such as 'r8_lora'.")
    why = None
    if "/" in value or "\\" in value or (os.altsep and os.altsep in value):
        why = "it holds a path separator"
    elif value in (".", ".."):
        why = "it names the folder itself or its parent"
    elif "\x00" in value:
        why = "it holds a NUL byte"
    elif len(value.encode("utf-8")) > MAX_BYTES:
        why = f"it is longer than {MAX_BYTES} bytes"
    if why:
        raise ConfigError(f"{key}: {value!r} must be one folder name ({why}); it would be written outside "
                          f"its folder. Use a plain name such as 'r8_lora'.")
    return value
