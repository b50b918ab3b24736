import pytest

from tunewright.config import Config, describe_schema, dump_yaml, load_config
from tunewright.errors import ConfigError


def test_defaults_build_and_round_trip_yaml(tmp_path):
    cfg = Config()
    p = tmp_path / "c.yaml"
    p.write_text(dump_yaml(cfg))
    assert load_config(p) == cfg


def test_dotted_overrides_parse_yaml_scalars():
    cfg = load_config(None, ["train.lr=3e-4", "train.max_steps=7", "train.max_grad_norm=null",
                             "data.bucket=false", "tracking=tensorboard"])
    assert cfg.train.lr == 3e-4 and cfg.train.max_steps == 7 and cfg.train.max_grad_norm is None
    assert cfg.data.bucket is False and cfg.tracking == ["tensorboard"]


def test_int_accepted_for_float():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


@pytest.mark.parametrize("override, must_say", [
    (["train.lrr=1"], ["train.lrr", "Did you mean 'train.lr'"]),
    (["modle.name=x"], ["modle", "Did you mean 'model'"]),
    (["train.schedule=cosin"], ["train.schedule", "'cosin'", "cosine"]),
    (["train.epochs=abc"], ["train.epochs", "abc", "int"]),
    (["train.batch_size=0"], ["train.batch_size", ">= 1"]),
    (["data.pad_to_multiple_of=0"], ["data.pad_to_multiple_of", ">= 1"]),
    (["train.cudnn_attention=maybe"], ["train.cudnn_attention", "maybe"]),
    (["tracking=[tensorbord]"], ["tensorbord", "tensorboard"]),
    (["task=clasification"], ["task", "classification"]),
])
def test_bad_config_names_key_value_and_allowed(override, must_say):
    with pytest.raises(ConfigError) as e:
        load_config(None, override)
    for s in must_say:
        assert s in str(e.value)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(notmap)


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("run_name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        load_config(evil)


def test_schema_description_lists_every_key_with_help():
    rows = describe_schema()
    keys = {k for k, _, _ in rows}
    for k in ["run_name", "output_dir", "model.name", "task", "data.train", "data.val", "data.test",
              "data.text_column", "data.label_column", "data.max_length", "data.max_bad_rows", "strategy", "method",
              "train.epochs", "train.max_steps", "train.batch_size", "train.lr", "train.weight_decay",
              "train.grad_accum", "train.seed", "checkpoint.every_steps", "checkpoint.keep_last", "tracking"]:
        assert k in keys
    assert all(h for _, _, h in rows)
