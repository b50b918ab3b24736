"""`tunewright serve`: FastAPI + uvicorn over TorchEngine / OnnxEngine, with dynamic batching (batcher.py)."""
from .app import Limits, build_app, serve

__all__ = ["Limits", "build_app", "serve"]
