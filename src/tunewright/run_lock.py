"""One process per run folder: a second `train` into the same folder is refused, naming the first.

Two runs writing one folder at once (the same config started twice, a resume while the first still
runs) interleave metrics.jsonl rows, race on checkpoints and leave a model from neither. The lock is
`<output_dir>/.<run_name>.lock`, beside the folder rather than in it (a fresh run replaces the folder),
held with `fcntl.flock` for the life of the run. The kernel drops a flock when its process dies,
however it dies (SIGKILL, OOM), so a dead run never leaves the folder stuck: the next run takes the
lock and overwrites the stale owner line. The file holds who has it (pid, host, start time) only to
say so in the error.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import TunewrightError

try:
    import fcntl
except ImportError:          # Windows: no flock; runs there are not locked (said in the docstring of acquire)
    fcntl = None


class RunLock:
    """Held while a run writes its folder; `release()` (or the process ending) frees it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir).parent / f".{Path(run_dir).name}.lock"
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock or raise a TunewrightError naming the process that has it. A no-op where the
        platform has no flock (Windows)."""
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            who = (f"process {owner.get('pid')} on {owner.get('host')}, started "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(owner.get('started', 0)))}"
                   if owner else "another process")
            raise TunewrightError(f"{self.run_dir} is in use by {who} (lock {self.path}). Wait for it to finish, "
                                  f"stop it, or choose another run_name.") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}
