"""Which `parallel` a run's fit() gets, from the world and `distributed.strategy`."""
from __future__ import annotations


def parallel_for(world, cfg, data, model, loss_fn, class_weights, device):
    """(fit()'s `parallel`, the run's sharding calls). One process: (None, WholeModel). DDP: DataParallel
    with loss units for exact gradient means and a probe batch that finds parameters the forward never
    uses. FSDP: one ShardedParallel for both (it shards only when told, after any resume load)."""
    from ..data.collate import to_device
    from ..training.losses import loss_units
    from .fsdp import ShardedParallel, WholeModel, refuse_unsupported
    from .parallel import DataParallel

    if world.world == 1:
        return None, WholeModel(world.rank)
    units = loss_units(cfg.task, class_weights)
    if cfg.distributed.strategy == "fsdp":
        refuse_unsupported(cfg, data.model, model)
        sharded = ShardedParallel(world, units, device)
        return sharded, sharded
    sample = to_device(data.collate([data.train[i] for i in range(min(2, len(data.train)))]), device)
    return DataParallel(world, units, device, probe=lambda m: loss_fn(m(sample), sample)), WholeModel(world.rank)
