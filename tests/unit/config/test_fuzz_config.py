"""Property tests of the config loader (hypothesis, fixed seed, bounded time).

Whatever a YAML file, a `key.sub=value` override or a nested dict holds, `load_config` and
`config_from_dict` return a Config or raise a ConfigError, never anything else, and never hang.
A Config that loads has the types its schema says. Explicit regression tests below keep each
crash the fuzzing found (a TypeError, RecursionError, UnicodeDecodeError or yaml error leaking).
"""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tunewright.config import Config, dump_yaml, load_config
from tunewright.config.load import config_from_dict, describe_schema, parse_overrides
from tunewright.errors import ConfigError

HANG = 10     # seconds: a hang, not slowness
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
KEYS = [k for k, _, _ in describe_schema()]                      # every dotted key: train.lr, lora.r, ...
NAMES = sorted({p for k in KEYS for p in k.split(".")})         # their parts, so generated dicts reach deep
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
           | st.sampled_from(["auto", "lora", "full", "cosine", "jsonl", "classification", "null", "~"]))
KEY = st.sampled_from(NAMES) | st.text(max_size=6) | st.integers(-3, 3) | st.none() | st.booleans()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(KEY, inner, max_size=4), max_leaves=12)


def _nest(flat: dict) -> dict:
    tree: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[leaf] = value
    return tree


# Trees shaped like the schema (real keys, random values: mostly the wrong type), and free-form ones.
NESTED = (st.dictionaries(st.sampled_from(KEYS), VALUES | SCALARS, max_size=5).map(_nest)
          | st.dictionaries(st.sampled_from(NAMES) | KEY, VALUES, max_size=6))
# Text that YAML gives meaning to, plus schema names, so random files are mostly almost-valid YAML.
YAML_BITS = st.sampled_from(list(":-[]{}!&*#|>'\",.?%@` \t\n") + ["\n  ", "!!python/object:os.system", "!!int",
                            "&a", "*a", "<<", "---", "...", "0x1F", "1e999", ".nan", "~", "\x00", "\ufeff"]
                            + NAMES[:40])
# A scalar with an explicit tag: PyYAML's own constructors raise IndexError, ValueError, KeyError or
# AttributeError on some (`!!int ''`, `!!float x`, `!!bool x`, `!!timestamp x`), not only YAMLError.
TAGGED = st.tuples(st.sampled_from(["!!int", "!!float", "!!bool", "!!timestamp", "!!null", "!!binary", "!!str",
                                    "!!python/object:os.system", "!custom"]),
                   st.sampled_from(["''", "x", "0x", "0b", "1:", "2001-13-45", "[]", "@@"]) | st.text(max_size=4)
                   ).map(" ".join)
YAML_TEXT = st.lists(YAML_BITS | TAGGED | st.text(max_size=4), max_size=40).map("".join)


def _check(cfg: Config) -> None:
    """A Config that loads holds what its schema says: every value of the annotated type, floats finite."""
    def walk(obj, prefix):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            value, tp = getattr(obj, f.name), hints[f.name]
            if dataclasses.is_dataclass(value):
                walk(value, prefix + f.name + ".")
                continue
            args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
            base = typing.get_origin(args[0]) or args[0]
            if value is None or base is typing.Any:
                continue
            assert isinstance(value, base) and not (base is int and isinstance(value, bool)), (prefix + f.name, value)
            if base is float:
                assert math.isfinite(value), (prefix + f.name, value)
    walk(cfg, "")
    assert all(isinstance(t, str) for t in cfg.tracking)


def _loads_or_config_error(fn, *args):
    try:
        cfg = fn(*args)
    except ConfigError as e:
        assert str(e).strip()
        return None
    _check(cfg)
    return cfg


@seed(20261202)
@FUZZ
@given(text=YAML_TEXT)
def test_any_yaml_text_gives_a_config_or_a_config_error(tmp_path_factory, time_limit, text):
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with time_limit(HANG):
        _loads_or_config_error(load_config, path)


@seed(20261202)
@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_give_a_config_or_a_config_error(tmp_path_factory, time_limit, data):
    path = tmp_path_factory.mktemp("bytes") / "c.yaml"
    path.write_bytes(data)
    with time_limit(HANG):
        _loads_or_config_error(load_config, path)


@seed(20261202)
@FUZZ
@given(tree=NESTED)
def test_nested_dicts_with_wrong_types_give_a_config_or_a_config_error(tmp_path_factory, time_limit, tree):
    with time_limit(HANG):
        cfg = _loads_or_config_error(config_from_dict, tree)
    if cfg is not None:     # what loads round-trips through the YAML `train` writes into the run folder
        path = tmp_path_factory.mktemp("round") / "config.yaml"
        path.write_text(dump_yaml(cfg))
        assert load_config(path) == cfg
    # The same tree written as YAML, as a user's recipe would be.
    try:
        text = yaml.safe_dump(tree)
    except (yaml.YAMLError, RecursionError, ValueError):
        return
    path = tmp_path_factory.mktemp("tree") / "c.yaml"
    path.write_text(text)
    with time_limit(HANG):
        _loads_or_config_error(load_config, path)


OVERRIDE = st.tuples(st.sampled_from(KEYS) | st.lists(st.sampled_from(NAMES) | st.text(max_size=4), max_size=4)
                     .map(".".join), st.sampled_from(["=", "", "==", " = "]), YAML_TEXT)


@seed(20261202)
@FUZZ
@given(parts=st.lists(OVERRIDE, max_size=4))
def test_any_override_strings_give_a_config_or_a_config_error(time_limit, parts):
    with time_limit(HANG):
        _loads_or_config_error(config_from_dict, {}, [k + eq + v for k, eq, v in parts])


# ---------------------------------------------------------------- what the fuzzing found, kept


@pytest.mark.parametrize("text,must_say", [
    ("1: 2\n", ["1", "not a config key"]),                                 # TypeError: str + int
    ("train:\n  ~: 1\n", ["train", "None", "not a config key"]),           # TypeError: str + NoneType
    ("true: 1\n", ["True", "not a config key"]),
    ("tracking: [1]\n", ["tracking", "1"]),                                # TypeError in difflib
    ("[" * 3000 + "\n", ["nested too deeply"]),                            # RecursionError in yaml
    ("train: {lr: .nan}\n", ["train.lr", "nan", "finite"]),               # accepted: training on a NaN LR
    ("train: {lr: .inf}\n", ["train.lr", "inf", "finite"]),
    ("train: {seed: 4294967296}\n", ["train.seed", "4294967296"]),         # ValueError later, in seed_everything
    ("train: {epochs: !!int ''}\n", ["not valid YAML", "IndexError"]),     # PyYAML's own IndexError
])
def test_found_by_fuzzing_yaml_files(tmp_path, text, must_say):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    for s in must_say:
        assert s in str(e.value)


def test_found_by_fuzzing_a_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"run_name: \xff\xfe\n")                             # UnicodeDecodeError leaked
    with pytest.raises(ConfigError, match=rf"{path}: not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize("override,must_say", [
    ("train.lr=[", ["train.lr=[", "not valid YAML"]),                      # yaml ParserError leaked
    ("train.lr=1: 2: 3", ["train.lr", "not valid YAML"]),                  # yaml ScannerError
    ("train.lr=\x00", ["train.lr", "not valid YAML"]),                     # yaml ReaderError
    ("train.lr=!!python/name:os.system", ["train.lr", "not valid YAML"]),  # a tag: refused, as in files
    ("train.lr=!!int ''", ["train.lr", "not valid YAML", "IndexError"]),    # PyYAML's own IndexError
    ("train.lr=!!float x", ["train.lr", "not valid YAML", "ValueError"]),
    ("train.lr=!!bool x", ["train.lr", "not valid YAML", "KeyError"]),
    ("run_name=!!timestamp x", ["run_name", "not valid YAML", "AttributeError"]),
    ("train={1: 2}", ["train", "1", "not a config key"]),                  # TypeError
])
def test_found_by_fuzzing_overrides(override, must_say):
    with pytest.raises(ConfigError) as e:
        parse_overrides([override]) and config_from_dict({}, [override])
    for s in must_say:
        assert s in str(e.value)


def test_yaml_tags_are_refused_in_files_and_overrides(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("train: !!python/object/new:tunewright.config.schema.TrainConfig {}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, ["run_name=!!python/object/apply:os.getcwd []"])
