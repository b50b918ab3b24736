"""Errors users see. Each names the file, row, key or value at fault and says what is allowed."""
from __future__ import annotations

import contextlib


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


@contextlib.contextmanager
def blame(path, what: str, error: type = None):
    """Make every error raised inside the block name `path`, the file the user has to look at.

    For code that rebuilds something a saved file describes (a model from tunewright_model.json, an
    adapter from tunewright_adapter.json): what the libraries it drives raise for a bad description is
    open-ended (transformers, huggingface_hub, peft, torch: huggingface_hub's
    StrictDataclassFieldValidationError for a config's `hidden_size: "x"` is no ValueError), so any
    Exception becomes `error`
    (ModelLoadError by default) saying `f"{path}: {what} (Type: message)"`; tunewright's own errors keep
    their type and get the path in front unless they name it already.
    """
    try:
        yield
    except TunewrightError as err:
        if str(path) in str(err):
            raise
        raise type(err)(f"{path}: {what}: {err}") from err
    except Exception as err:  # noqa: BLE001 - see the docstring
        raise (error or ModelLoadError)(f"{path}: {what} ({type(err).__name__}: {err})") from err


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's `kill`, torchrun stopping its workers, `docker stop`), raised in the main thread
    so that a run ends as Ctrl-C does: the trackers record it as killed, the progress bar ends its line, the
    last checkpoint stays for `--resume`. A KeyboardInterrupt, so every handler of Ctrl-C covers it."""

    exit_code = 143    # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


def raise_on_sigterm() -> bool:
    """Turn SIGTERM into `Terminated` in this process, unless something else already handles it (a server
    drains its requests itself). Only the main thread may set handlers; True when it was installed."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False

    def handler(signum, frame):
        raise Terminated()
    signal.signal(signal.SIGTERM, handler)
    return True
