from .groups import build_optimizer, no_decay, param_groups
from .schedules import SCHEDULES, build_scheduler, schedule_fn, schedule_options

__all__ = ["param_groups", "build_optimizer", "no_decay", "build_scheduler", "schedule_fn", "schedule_options",
           "SCHEDULES"]
