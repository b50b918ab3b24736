"""Data: read and validate every split before any model loads, then tokenize / preprocess once.

    raw = read_data(cfg)                        # RawData; DataError names file:line (column)
    bundle = build_data(raw, preprocessor, cfg) # DataBundle: datasets, collate, lengths, ...
    for idx in epoch_batches(len(bundle.train), bs, seed, epoch, bundle.lengths["train"]):
        batch = bundle.collate([bundle.train[i] for i in idx])
"""
from tunewright.data.batching import balanced_weights, epoch_batches, padding_fraction
from tunewright.data.build import DataBundle, ExampleDataset, build_data, encode_inputs
from tunewright.data.collate import Collator, pad_id_of, to_device
from tunewright.data.images import ImageDataset, ImagePreprocessor
from tunewright.data.read import RawData, read_data, read_split
from tunewright.data.readers import BadRow, Example
from tunewright.data.splits import split_indices, subset_indices
from tunewright.data.text import IGNORE_INDEX

__all__ = ["BadRow", "Collator", "DataBundle", "Example", "ExampleDataset", "IGNORE_INDEX",
           "ImageDataset", "ImagePreprocessor", "RawData", "balanced_weights", "build_data",
           "encode_inputs", "epoch_batches", "pad_id_of", "padding_fraction", "read_data", "read_split",
           "split_indices", "subset_indices", "to_device"]
