"""tunewright_adapter.json: how a saved adapter is rebuilt, and the checks it passes before it is used.

`save_adapter` (base.py) writes it beside peft's files::

    {"format": 1, "method": "lora", "module": "tunewright.peft.lora", "backend": "peft" | "tunewright",
     "adapter_name": "default", "options": {...}}       # options: what the method's inject() rebuilds from

Nothing named in the file is imported: `method` must be a method this tunewright declares and `module`
its declared module (so a `module` outside `tunewright.peft.` is refused). A file that is not what
save_adapter writes is a ModelLoadError naming the file and the key (tests/unit/peft/test_fuzz_adapter_info.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelLoadError, blame

INFO = "tunewright_adapter.json"
FORMAT = 1


def saved_method(info: dict):
    """The declaration of the method a saved adapter was trained with (tunewright_adapter.json)."""
    from .registry import METHODS
    method = METHODS.get(info.get("method"))
    if method is None or method.module != info["module"]:
        raise ModelLoadError(f"saved adapter: method {info.get('method')!r} (module {info.get('module')!r}) is not "
                             f"a method this tunewright knows ({', '.join(METHODS)}).")
    return method


def read_info(adapter_dir: Path) -> dict:
    """tunewright_adapter.json, checked: each key holds what save_adapter writes, and the method is one this
    tunewright declares, in its own module (a `module` outside `tunewright.peft.` is refused: nothing named
    in the file is imported). Anything else is a ModelLoadError naming the file and the key."""
    path = Path(adapter_dir) / INFO
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{adapter_dir} is not a tunewright adapter folder ({INFO} is missing).") from None
    except (ValueError, RecursionError) as err:       # not JSON, not UTF-8, or [[[[...
        raise ModelLoadError(f"{path} is corrupt (not valid JSON: {err}).") from None
    if not isinstance(info, dict):
        raise ModelLoadError(f"{path} is not a tunewright adapter description.")
    if not str(info.get("module", "")).startswith("tunewright.peft."):
        raise ModelLoadError(f"{path}: unknown adapter module {info.get('module')!r}.")
    for key, ok, expected in (
            ("format", type(info.get("format")) is int and info["format"] <= FORMAT, f"a format <= {FORMAT}"),
            ("method", isinstance(info.get("method"), str), "a method name"),
            ("backend", info.get("backend") in ("peft", "tunewright"), "peft or tunewright"),
            ("adapter_name", _adapter_name_ok(info.get("adapter_name")), "a name without '.' or '/'"),
            ("options", isinstance(info.get("options", {}), dict), "a mapping")):
        if not ok:
            raise ModelLoadError(f"{path}: key {key!r} is {info.get(key)!r:.80}, expected {expected}.")
    with blame(path, "not a method this tunewright knows"):
        saved_method(info)
    return info


def _adapter_name_ok(name) -> bool:
    """A name peft and torch accept as a module key (no '.', not empty) that is also one folder name."""
    return isinstance(name, str) and name.strip() != "" and not set(name) & {".", "/", "\\", "\x00"}
