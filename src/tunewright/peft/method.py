"""What a PEFT method declares about itself: the one contract between a method and the rest of tunewright.

A method is one module in this package holding a ``Method`` at its top level (prompt.py holds two).
``registry.py`` finds them; ``METHODS``, the names ``method:`` allows in a config, the pattern that
keeps adapter parameters out of ``head.safetensors``, and the test matrix (tests/methods) are all
built from these declarations. Code elsewhere asks a declaration (``method_spec(cfg.method).merges``);
it never compares ``cfg.method`` with a name.

Required: ``name``, ``apply``, ``own_pattern``, the traits; ``options``, its config section's dataclass. The hooks are optional (None: not needed):

    inject(model, options, name)        rebuild tunewright-layer adapters from saved options (load_adapter)
    saved_options(model, cfg) -> dict   what inject() needs, written to tunewright_adapter.json
    restore_config(peft_config, saved)  fix peft's live config from the saved adapter_config.json before its
                                        weights are loaded back (AdaLoRA: the saved rank pattern)
    adapter_names(model) -> list[str]   adapters a method holds outside any adapter layer (BitFit)

A dataclass, not a class hierarchy: a declaration is data plus a few functions (STYLE.md rule 8).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Method:
    name: str                                   # the value of `method:` in a config
    apply: Callable[[Any, Any], Any]            # (model, cfg) -> Plan: inject, choose what trains (base.py)
    own_pattern: Callable[[str], str]           # adapter name -> regex of the parameter names it trains
    module: str                                 # saved in tunewright_adapter.json; must start "tunewright.peft."
    # Regex that any adapter parameter of this method matches, whatever the adapter's name (including those
    # it adds but does not train, e.g. AdaLoRA's ranknum). None: the method adds no parameters (BitFit trains
    # the base's own biases). The union over all methods keeps adapters out of head.safetensors.
    adapter_pattern: Optional[str]
    equal_at_init: bool                         # the model's output equals the base model's before training
    merges: bool                                # the update can be folded into the base weights
    freezes_base: bool = True                   # a PEFT method: the base stays frozen, the run saves an adapter
    low_rank: bool = False                      # its update is a low-rank matrix (analysis: lora spectrum)
    inject: Optional[Callable[[Any, dict, str], None]] = None
    saved_options: Optional[Callable[[Any, Any], Optional[dict]]] = None
    restore_config: Optional[Callable[[Any, dict], None]] = None
    adapter_names: Optional[Callable[[Any], list]] = None
    # The options dataclass of the config section named like the method (`lora:` -> LoraOptions). It lives in
    # config/schema.py because config sits below peft and must parse a YAML file without importing it; the
    # declaration ties it to the method, and tests/methods/test_registry.py checks the two agree.
    options: Optional[type] = None
