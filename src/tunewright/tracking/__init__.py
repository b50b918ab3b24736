from .base import JsonlTracker, TensorBoardTracker, Tracker, build_trackers, flatten

__all__ = ["Tracker", "JsonlTracker", "TensorBoardTracker", "build_trackers", "flatten"]
