"""Pretrained models as task models: loading (packaged, HF folder or hub, user factory), task
heads and pooling, layer-group discovery, and saving/reloading a run's model.

    model, preprocessor = load_model(cfg, num_labels)   # TaskModel + tokenizer / ImageSpec / None
    groups = layer_groups(model)                        # bottom -> top, head last
    save_run_model(model, dir, cfg_dict, label_names, preprocessor)
    model, preprocessor, meta = load_run_model(dir)
"""
from tunewright.models.groups import LayerGroup, find_block_stack, group_of, layer_groups
from tunewright.models.image_spec import ImageSpec
from tunewright.models.load import build_task_model, load_model, load_tokenizer, resolve_source
from tunewright.models.pooling import pool
from tunewright.models.save import load_run_model, load_weights_into, read_meta, save_run_model
from tunewright.models.task_model import TaskModel, make_head, override_dropout

__all__ = [
    "ImageSpec", "LayerGroup", "TaskModel", "build_task_model", "find_block_stack", "group_of",
    "layer_groups", "load_model", "load_tokenizer", "load_run_model", "load_weights_into", "make_head",
    "override_dropout", "pool", "read_meta", "resolve_source", "save_run_model",
]
