"""A torchrun worker that runs `tunewright` and records every write it makes under AUDIT_WATCH (Python's
audit hooks: open for writing, mkdir, rename, remove, rmtree), saved to AUDIT_OUT.<rank> at exit.
tests/e2e/test_distributed.py starts it as `torchrun --nproc-per-node 2 _audit_worker.py train CONFIG ...`."""
import atexit
import json
import os
import sys

WATCH, OUT, RANK = os.environ["AUDIT_WATCH"], os.environ["AUDIT_OUT"], os.environ.get("RANK", "?")
seen = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, os.PathLike)) and WATCH in str(args[0]):
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS):
            seen.append(["open", str(args[0])])
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.unlink", "shutil.rmtree", "os.rmdir") \
            and args and WATCH in str(args[0]):
        seen.append([event, str(args[0])])


sys.addaudithook(hook)
atexit.register(lambda: open(f"{OUT}.{RANK}", "w").write(json.dumps(seen)))

from tunewright.cli.main import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
