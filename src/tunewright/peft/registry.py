"""The methods' registry, built from their declarations: every module of this package that holds a
``Method`` at its top level declares it (method.py). A new method is a new module here; nothing
central changes.

Also derived here: ``ADAPTER_PARAM``, the union of the declared ``adapter_pattern``s, which decides
which parameters belong to an adapter (and so never go into head.safetensors); and config's allowed
values of ``method:`` (config/declared.py).
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from ..config import declared
from ..training.plan import Plan
from .method import Method


def _none(model, cfg) -> Plan:
    return Plan()


# `method: none`: no method; the strategy alone decides what trains and the run saves the full model.
NONE = Method("none", _none, own_pattern=lambda name: r"(?!)", module="tunewright.peft", adapter_pattern=None,
              equal_at_init=True, merges=False, freezes_base=False)


def _declared() -> dict[str, Method]:
    found = {NONE.name: NONE}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Method) and value.module == module.__name__:   # declared here, not imported
                if found.setdefault(value.name, value) is not value:
                    raise RuntimeError(f"two PEFT methods declare the name {value.name!r}")
    return found


METHODS: dict[str, Method] = _declared()
declared.declare("method", METHODS)          # config checks `method:` against these names when it loads

ADAPTER_PARAM = re.compile("|".join(dict.fromkeys(f"(?:{m.adapter_pattern})" for m in METHODS.values()
                                                  if m.adapter_pattern)))


def method_spec(name: str) -> Method:
    """The declaration of method `name` (a ConfigError naming the known ones if there is none)."""
    declared.check("method", name)
    return METHODS[name]


def is_adapter_param(name: str) -> bool:
    """Whether parameter `name` belongs to an adapter of any method, whatever the adapter's name."""
    return bool(ADAPTER_PARAM.search(name))
