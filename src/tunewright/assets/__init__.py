"""Packaged models and datasets by short name (how each one loads offline; see ASSETS.md)."""
from tunewright.assets.datasets import DatasetAsset, get_dataset, list_datasets

__all__ = ["DatasetAsset", "get_dataset", "list_datasets"]
