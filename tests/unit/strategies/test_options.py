"""Strategy, schedule and L2-SP options fail when the run's config is checked (`run.as_config`, before any data
is read), naming the key, the value and what is allowed."""
import pytest

from tunewright.run import as_config
from tunewright.errors import ConfigError


@pytest.mark.parametrize("overrides, message", [
    (["strategy=partial"], r"strategy: partial needs strategy_options.train_top .* or strategy_options.rules"),
    (["strategy_options.layer_lr=llrd"], r"strategy_options.layer_lr: 'llrd' is not allowed; choose one of none, "
                                         r"ulmfit, decay"),
    (["strategy_options.unfreeze_at=[2, 1]"], r"strategy_options.unfreeze_at: \[2, 1\] is not allowed; give epochs"),
    (["strategy_options.layer_decay=1.5"], r"strategy_options.layer_decay: 1.5 is not allowed; it must be in \(0, 1\]"),
    (["strategy_options.rules=[[head, trian]]"], r"strategy_options.rules\[0\]: action 'trian' is not allowed"),
    (["strategy_options.groups=[[head]]"], r"strategy_options.groups\[0\]: \['head'\] is not allowed"),
    (["train.cut_frac=1.5"], r"train.cut_frac: 1.5 is not allowed; it must be in \(0, 1\)"),
    (["train.l2sp_alpha=-1"], r"train.l2sp_alpha: -1.0 is not allowed; it must be >= 0"),
    (["strategy=gradual_unfreezng"], r"strategy: 'gradual_unfreezng' is not known; choose one of full, .* Did you "
                                     r"mean 'gradual_unfreezing'\?"),
])
def test_bad_options_fail_at_load(overrides, message):
    with pytest.raises(ConfigError, match=message):
        as_config({}, overrides)


def test_every_strategy_option_has_help():
    from tunewright.config.load import describe_schema
    rows = [r for r in describe_schema() if r[0].startswith("strategy_options.") or r[0] in (
        "train.cut_frac", "train.stlr_ratio", "train.l2sp_alpha", "data.mixup_alpha", "data.word_dropout")]
    assert len(rows) >= 20 and all(len(help_) > 20 for _, _, help_ in rows)
