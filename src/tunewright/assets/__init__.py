"""Packaged models and datasets by short name (how each one loads offline; see ASSETS.md)."""
from tunewright.assets.datasets import DatasetAsset, get_dataset, list_datasets
from tunewright.assets.models import ModelAsset, get_model_asset, list_models

__all__ = ["DatasetAsset", "get_dataset", "list_datasets", "ModelAsset", "get_model_asset", "list_models"]
