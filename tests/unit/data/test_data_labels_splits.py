"""Label maps per task, unseen labels, and seeded stratified splits and subsets."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tunewright.data import read_data, split_indices, subset_indices
from tunewright.data.labels import sort_names
from tunewright.errors import DataError


def _jsonl(write, name, rows):
    return write(name, "".join(json.dumps(r) + "\n" for r in rows))


def _rows(labels):
    return [{"text": f"example {i}", "label": lb} for i, lb in enumerate(labels)]


def test_label_map_sorted_strings_from_train(cfg):
    raw = read_data(cfg)                         # tiny_train.csv
    assert raw.label_names == ["finance", "sports", "weather"]
    assert all(raw.label_names[ex.target] == ex.label for s in ("train", "val", "test")
               for ex in raw.splits[s])


def test_numeric_labels_sort_numerically_and_ints_are_class_names(cfg, write):
    train = _jsonl(write, "train.jsonl", _rows([10, 2, 1, 2, 10, 1] * 3))
    test = write("test.csv", "text,label\nx y,10\nz w,2\n")      # CSV strings, same classes
    cfg.data.train, cfg.data.test, cfg.data.val_fraction = str(train), str(test), 0.0
    raw = read_data(cfg)
    assert raw.label_names == ["1", "2", "10"]
    assert [ex.target for ex in raw.test] == [2, 1]
    assert sort_names({"1.5", "-2", "10"}) == ["-2", "1.5", "10"]


def test_unseen_test_label_names_file_line_value_and_known(cfg, write):
    test = write("test.csv", "text,label\nthe goal,sports\nthe tide,ocean\n")
    cfg.data.test = str(test)
    with pytest.raises(DataError) as e:
        read_data(cfg)
    msg = str(e.value)
    assert e.value.path == str(test) and e.value.line == 3 and e.value.column == "label"
    assert "'ocean'" in msg and "'finance', 'sports', 'weather'" in msg


def test_regression_labels(cfg, write):
    rows = [{"text": f"t {i}", "label": i / 2} for i in range(10)]
    cfg.task, cfg.data.train = "regression", str(_jsonl(write, "r.jsonl", rows))
    raw = read_data(cfg)
    assert raw.label_names is None
    assert sorted(ex.target for s in raw.splits.values() for ex in s) == [i / 2 for i in range(10)]
    bad = write("bad.csv", "text,label\na,1.5\nb,abc\n")
    cfg.data.train = str(bad)
    with pytest.raises(DataError, match="'abc' is not a number") as e:
        read_data(cfg)
    assert e.value.line == 3


def test_multilabel_lists_and_pipes(cfg, write):
    train = write("m.csv", "text,label\n" + "a b,x|y\nc d,y\ne f,\ng h,z|x\n" * 3)
    cfg.task, cfg.data.train = "multilabel", str(train)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    raw = read_data(cfg)
    assert raw.label_names == ["x", "y", "z"]
    assert [ex.target for ex in raw.train[:4]] == [[0, 1], [1], [], [2, 0]]
    test = _jsonl(write, "t.jsonl", [{"text": "q", "label": ["y", "z"]}])
    cfg.data.test = str(test)
    assert read_data(cfg).test[0].target == [1, 2]


def test_class_label_rejects_lists(cfg, write):
    cfg.data.train = str(_jsonl(write, "t.jsonl", [{"text": "a", "label": ["x"]}]))
    with pytest.raises(DataError, match="task: multilabel"):
        read_data(cfg)


def test_split_is_seeded_and_stratified():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    keep1, held1, note = split_indices(100, labels, 0.2, seed=3)
    keep2, held2, _ = split_indices(100, labels, 0.2, seed=3)
    _, held3, _ = split_indices(100, labels, 0.2, seed=4)
    assert note is None and (keep1, held1) == (keep2, held2) and held1 != held3
    assert sorted(keep1 + held1) == list(range(100)) and len(held1) == 20
    assert Counter(labels[i] for i in held1) == {"a": 12, "b": 6, "c": 2}


def test_split_keeps_singleton_classes_in_train():
    labels = ["a"] * 20 + ["b"] * 20 + ["solo"]
    keep, held, note = split_indices(41, labels, 0.25, seed=0)
    assert 40 in keep and "single row" in note
    assert Counter(labels[i] for i in held) == {"a": 6, "b": 5} or \
        Counter(labels[i] for i in held) == {"a": 5, "b": 6}


def test_split_falls_back_to_unstratified_and_says_so():
    labels = [str(i % 10) for i in range(40)]        # 10 classes, only 2 rows held out
    keep, held, note = split_indices(40, labels, 0.05, seed=0)
    assert "unstratified" in note and len(held) == 2
    assert {labels[i] for i in keep} == set(labels)  # no class vanished from train


def test_subset_is_stratified_and_seeded():
    labels = ["a"] * 80 + ["b"] * 20
    sub, note = subset_indices(100, labels, 10, seed=1)
    assert note is None and sub == subset_indices(100, labels, 10, seed=1)[0]
    assert Counter(labels[i] for i in sub) == {"a": 8, "b": 2}
    assert subset_indices(100, labels, 500, seed=1)[0] == list(range(100))


def test_subsets_in_read_data(cfg):
    cfg.data.train_subset, cfg.data.test_subset = 30, 6
    raw = read_data(cfg)
    # test (20% of 60 = 12) is carved first, then train is cut to 30, then val is 10% of that
    assert len(raw.test) == 6 and len(raw.val) == 3 and len(raw.train) == 27
    assert raw.label_names == ["finance", "sports", "weather"]
    assert Counter(ex.label for ex in raw.test) == {"finance": 2, "sports": 2, "weather": 2}


def test_read_data_is_deterministic(cfg):
    a, b = read_data(cfg), read_data(cfg)
    assert [ex.line for ex in a.val] == [ex.line for ex in b.val]
    cfg.train.seed = 1
    assert [ex.line for ex in read_data(cfg).val] != [ex.line for ex in a.val]
