from .load import config_from_dict, describe_schema, dump_yaml, load_config, to_dict
from .schema import CheckpointConfig, Config, DataConfig, ModelConfig, TrainConfig, eval_batch_size

__all__ = ["Config", "ModelConfig", "DataConfig", "TrainConfig", "CheckpointConfig",
           "load_config", "config_from_dict", "dump_yaml", "to_dict", "describe_schema", "eval_batch_size"]
