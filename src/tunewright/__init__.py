"""tunewright: fine-tune any pretrained PyTorch model."""
__version__ = "0.1.0"
