"""Several processes, one node or many: process groups from torchrun's environment (env.py), DDP behind
the loop's `parallel` (parallel.py; FSDP2 in fsdp.py), collectives a run needs (collective.py),
sharded evaluation (evaluate.py), and the torchrun command line (launch.py). torchrun does the
launching and the rendezvous; docs/scale.md has the commands and cluster specs."""
from .env import DistributedError, World, from_env

__all__ = ["DistributedError", "World", "from_env"]
