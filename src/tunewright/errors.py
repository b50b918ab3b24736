"""Errors users see. Each names the file, row, key or value at fault and says what is allowed."""
from __future__ import annotations


class TunewrightError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""


class ConfigError(TunewrightError):
    """A config key, type or value is wrong."""


class DataError(TunewrightError):
    """Input data is malformed. The message names file, line and column."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | None = None):
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            if column is not None:
                where += f" (column {column!r})"
            where += ": "
        super().__init__(where + message)
        self.path, self.line, self.column = path, line, column


class ModelLoadError(TunewrightError):
    """A model name or path cannot be resolved or loaded."""


class CheckpointError(TunewrightError):
    """A checkpoint is missing, truncated or corrupt."""


class TrainingError(TunewrightError):
    """Training cannot continue (e.g. too many non-finite steps in a row)."""


class MethodError(TunewrightError):
    """A parameter-efficient method cannot do what was asked on this model (e.g. merge an adapter)."""
