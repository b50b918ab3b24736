import numpy as np
import pytest
import torch

from tunewright.config.load import config_from_dict
from tunewright.errors import ConfigError
from tunewright.meta.data import MetaData, _split
from tunewright.meta.driver import build_net


def _cfg(**meta):
    return config_from_dict({"meta": {"n_way": 2, "k_shot": 2, "q_queries": 3, **meta}})


def test_small_classes_are_listed_and_in_neither_pool():
    names = ["a", "b", "c", "d", "e"]
    y = np.array([0] * 9 + [1] * 5 + [2] * 4 + [3] * 6 + [4] * 7)     # c has 4 < k + q = 5
    train, test, excluded = _split(_cfg(test_classes=["d", "e"]), y, names)
    assert excluded == {"c": 4}
    assert train == [0, 1] and test == [3, 4]
    train, test, excluded = _split(_cfg(test_classes=["d", "e"], min_per_class=6), y, names)
    assert excluded == {"b": 5, "c": 4} and train == [0]


def test_test_classes_by_name_or_id_and_bad_ones_are_named():
    names = ["acq", "crude", "earn", "ship"]
    y = np.repeat(np.arange(4), 6)
    assert _split(_cfg(test_classes=["earn", 3]), y, names)[1] == [2, 3]
    with pytest.raises(ConfigError, match="'gold' is not a class"):
        _split(_cfg(test_classes=["gold"]), y, names)
    y = np.array([0] * 6 + [1] * 6 + [2] * 2 + [3] * 6)
    with pytest.raises(ConfigError, match=r"\['earn'\] have fewer than 5"):
        _split(_cfg(test_classes=["earn"]), y, names)


@pytest.mark.parametrize("trunk", ["mlp", "residual", "scale"])
def test_text_trunks(trunk):
    x = torch.randn(10, 12)
    data = MetaData(x, torch.zeros(10, dtype=torch.long), [0], [1], ["a", "b"], "text")
    net = build_net(_cfg(trunk=trunk, trunk_dim=8), data)
    out = net[0](x)
    if trunk == "mlp":
        assert out.shape == (10, 8)
    else:        # starts as the pretrained features themselves
        assert torch.equal(out, x)
    net[1](out).sum().backward()
    assert all(p.grad is not None for p in net[0].parameters())
    assert net[1].in_features == net[0].feature_dim
