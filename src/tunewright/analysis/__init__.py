"""Post-hoc analysis of a finished run (`tunewright analyze`): what changed, where, and does it matter.

Pure functions first (`linear_cka`, `relative_change`, `lora_spectrum`, `corrupt_texts`...), the
run-folder driver last (`analyze.py`).
"""
from .cka import linear_cka

__all__ = ["linear_cka"]
