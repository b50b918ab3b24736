"""`tunewright` command line: main() dispatches to one small module per subcommand.

Every subcommand module has `add_parser(subparsers)` and `run(args) -> int`.
A TunewrightError (bad config, bad data, missing model, corrupt checkpoint) prints one clear
line and exits 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

# Offline first: no hub lookups unless the user asks for them by unsetting these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Before torch's first CPU tensor: huge pages for its CPU allocator (tunewright/huge_pages.py). The
# entry point asks, not `import tunewright`: a library import changes nothing in the process.
from tunewright import huge_pages  # noqa: E402

huge_pages.request()

SUBCOMMANDS = ["train", "eval", "predict", "generate", "merge", "lr-plot", "lr-find", "assets", "demo", "config",
               "compare", "report", "analyze", "tune", "advise",
               "multitask", "continual", "meta-train", "adapt", "domain-adapt", "federate",
               "export", "serve", "bench-infer"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunewright", description="Fine-tune pretrained PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"tunewright.cli.{name.replace('-', '_')}_cmd").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import Terminated, TunewrightError, raise_on_sigterm

    parser = build_parser()
    # Overrides (key=value) may come before or after flags: `train c.yaml --resume train.lr=1e-3`.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handles_sigterm", False):   # `serve` drains its requests on SIGTERM (uvicorn)
        raise_on_sigterm()     # SIGTERM ends a run as Ctrl-C does: trackers say killed, checkpoints stay
    # peft reads transformers 5's deprecated `is_gradient_checkpointing` wherever it wraps or loads an adapter:
    # a warning for peft's maintainers, not for a user (the library filters it only around get_peft_model).
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        return int(args.func(args) or 0)
    except TunewrightError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except BrokenPipeError:       # the reader went away (`tunewright config | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nor complain while flushing at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
