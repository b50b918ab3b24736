from .base import JsonlTracker, TensorBoardTracker, Tracker, build_trackers, exit_status, flatten, log_report

__all__ = ["Tracker", "JsonlTracker", "TensorBoardTracker", "build_trackers", "exit_status", "flatten", "log_report"]
