"""Every malformed input is a DataError naming file, line and column; max_bad_rows skips+counts."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tunewright.data import read_data
from tunewright.errors import ConfigError, DataError

GOOD = "text,label\n" + "".join(f"row {i} words,{'ab'[i % 2]}\n" for i in range(20))


def _use(cfg, train, **kw):
    cfg.data.train = str(train)
    for k, v in kw.items():
        setattr(cfg.data, k, str(v) if k in ("val", "test") else v)
    return cfg


def test_good_csv_reads_with_lines(cfg, write):
    raw = read_data(_use(cfg, write("t.csv", GOOD), val_fraction=0.0, test_fraction=0.0))
    assert len(raw.train) == 20 and raw.val is None and raw.test is None
    assert [ex.line for ex in raw.train[:3]] == [2, 3, 4]
    assert raw.train[0].text == "row 0 words" and raw.label_names == ["a", "b"]


def test_quoted_newline_keeps_start_line(cfg, write):
    text = 'text,label\n"two\nlines",a\nnext,b\n' + GOOD.split("\n", 1)[1]
    raw = read_data(_use(cfg, write("t.csv", text), val_fraction=0.0, test_fraction=0.0))
    lines = {ex.text: ex.line for ex in raw.train}
    assert lines["two\nlines"] == 2 and lines["next"] == 4


def test_wrong_field_count(cfg, write):
    p = write("t.csv", GOOD + "too,many,fields\n")
    with pytest.raises(DataError) as e:
        read_data(_use(cfg, p))
    assert e.value.path == str(p) and e.value.line == 22
    assert "expected 2 fields" in str(e.value) and f"{p}:22" in str(e.value)


def test_too_few_fields_names_missing_column(cfg, write):
    p = write("t.csv", GOOD + "lonely\n")
    with pytest.raises(DataError) as e:
        read_data(_use(cfg, p))
    assert e.value.line == 22 and e.value.column == "label"


def test_bad_json_line(cfg, write):
    rows = [json.dumps({"text": f"w {i}", "label": i % 2}) for i in range(10)]
    rows.insert(3, '{"text": "oops", "label": ')
    p = write("t.jsonl", "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="invalid JSON") as e:
        read_data(_use(cfg, p))
    assert e.value.path == str(p) and e.value.line == 4


def test_jsonl_line_not_an_object(cfg, write):
    p = write("t.jsonl", '{"text": "a b", "label": "x"}\n["a", "x"]\n')
    with pytest.raises(DataError, match="expected a JSON object, got list") as e:
        read_data(_use(cfg, p))
    assert e.value.line == 2


def test_empty_file(cfg, write):
    p = write("t.csv", "")
    with pytest.raises(DataError, match="empty file") as e:
        read_data(_use(cfg, p))
    assert e.value.path == str(p)


def test_header_only_is_an_empty_split(cfg, write):
    test = write("test.csv", "text,label\n")
    with pytest.raises(DataError, match="test split is empty") as e:
        read_data(_use(cfg, cfg.data.train, test=test))
    assert e.value.path == str(test)


def test_missing_column_lists_existing_ones(cfg, write):
    p = write("t.csv", "sentence,label\nhello,a\n")
    with pytest.raises(DataError) as e:
        read_data(_use(cfg, p))
    msg = str(e.value)
    assert e.value.column == "text" and "['sentence', 'label']" in msg and e.value.line == 1


def test_missing_label_key_in_jsonl(cfg, write):
    p = write("t.jsonl", '{"text": "a b", "label": "x"}\n{"text": "c d", "y": "x"}\n')
    with pytest.raises(DataError, match=r"\['text', 'y'\]") as e:
        read_data(_use(cfg, p))
    assert e.value.line == 2 and e.value.column == "label"


def test_empty_text(cfg, write):
    p = write("t.csv", GOOD + '"   ",a\n')
    with pytest.raises(DataError, match="empty text") as e:
        read_data(_use(cfg, p))
    assert e.value.line == 22 and e.value.column == "text"


def test_empty_label(cfg, write):
    p = write("t.csv", GOOD + "some text,\n")
    with pytest.raises(DataError, match="empty label") as e:
        read_data(_use(cfg, p))
    assert e.value.line == 22 and e.value.column == "label"


def test_not_utf8_names_the_line(cfg, write):
    p = write("t.csv", GOOD.encode() + b"caf\xe9,a\n")
    with pytest.raises(DataError, match="not UTF-8") as e:
        read_data(_use(cfg, p))
    assert e.value.line == 22


def test_unsupported_extension_and_missing_file(cfg, write, tmp_path):
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        read_data(_use(cfg, write("t.xlsx", "x")))
    with pytest.raises(DataError, match="not a packaged dataset. Did you mean 'reuters-r8'"):
        read_data(_use(cfg, "reuters-r9"))


def test_max_bad_rows_skips_and_counts(cfg, write):
    p = write("t.csv", GOOD + "bad,row,here\n" + '"",a\n' + "fine text,b\n")
    raw = read_data(_use(cfg, p, max_bad_rows=2, val_fraction=0.0, test_fraction=0.0))
    assert len(raw.train) == 21
    assert [(b.path, b.line) for b in raw.bad_rows] == [(str(p), 22), (str(p), 23)]
    assert "expected 2 fields" in raw.bad_rows[0].reason and "empty text" in raw.bad_rows[1].reason


def test_max_bad_rows_plus_one_raises(cfg, write):
    p = write("t.csv", GOOD + "bad,row,here\n" + '"",a\n' + "x,y,z\n")
    with pytest.raises(DataError, match=r"more than data.max_bad_rows=2") as e:
        read_data(_use(cfg, p, max_bad_rows=2))
    assert e.value.line == 24


def test_bad_rows_budget_spans_files(cfg, write):
    train = write("train.csv", GOOD + "x,y,z\n")
    test = write("test.csv", "text,label\nok,a\nx,y,z\n")
    raw = read_data(_use(cfg, train, test=test, max_bad_rows=2))
    assert len(raw.bad_rows) == 2 and len(raw.test) == 1
    with pytest.raises(DataError) as e:
        read_data(_use(cfg, train, test=test, max_bad_rows=1))
    assert e.value.path == str(test)


def test_negative_max_bad_rows_is_a_config_error(cfg):
    cfg.data.max_bad_rows = -1
    with pytest.raises(ConfigError, match="max_bad_rows"):
        read_data(cfg)


def _image_folder(root, n=4, size=(6, 5)):
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), 40 * i, np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("ignored")
    return root


def test_image_folder_reads_classes(cfg, tmp_path):
    root = _image_folder(tmp_path / "imgs")
    raw = read_data(_use(cfg, root, val_fraction=0.25, test_fraction=0.25))
    assert raw.modality == "image" and raw.label_names == ["cat", "dog"]
    assert sum(len(raw.splits[s]) for s in ("train", "val", "test")) == 8
    assert all(ex.image.endswith(".png") and ex.line is None for ex in raw.train)


def test_corrupt_image_names_the_file(cfg, tmp_path):
    root = _image_folder(tmp_path / "imgs")
    bad = root / "dog" / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(DataError, match="unreadable image") as e:
        read_data(_use(cfg, root))
    assert e.value.path == str(bad)
    raw = read_data(_use(cfg, root, max_bad_rows=1))
    assert [b.path for b in raw.bad_rows] == [str(bad)]


def test_images_need_a_class_task(cfg, tmp_path):
    root = _image_folder(tmp_path / "imgs")
    cfg.task = "regression"
    with pytest.raises(DataError, match="image_classification"):
        read_data(_use(cfg, root))
