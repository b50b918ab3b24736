"""Hostile or odd input files: each is read correctly, or is a DataError that names the file and line.
docs/reliability.md lists every case with what happens."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from tunewright.data import read_data
from tunewright.errors import DataError

ROWS = "".join(f"row {i} words,{'ab'[i % 2]}\n" for i in range(20))


def _read(cfg, path, **data):
    cfg.data.train, cfg.data.val_fraction, cfg.data.test_fraction = str(path), 0.0, 0.0
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return read_data(cfg)


def test_unclosed_quote_does_not_eat_the_next_row(cfg, write):
    """Python's csv reader in its default mode reads these two rows as ONE record, text
    'this row never closes its quote,a\\nfine 41"' labelled 'b', and reports nothing."""
    p = write("t.csv", 'text,label\n"this row never closes its quote,a\n"fine 41",b\n' + ROWS)
    with pytest.raises(DataError) as e:
        _read(cfg, p)
    assert e.value.path == str(p) and e.value.line == 2
    assert "from line 2 to line 3" in str(e.value)
    raw = _read(cfg, p, max_bad_rows=1)                     # skipped and counted, never merged
    assert raw.bad_rows[0].line == 2 and "malformed row" in raw.bad_rows[0].reason
    texts = [ex.text for ex in raw.train]
    assert texts == [f"row {i} words" for i in range(20)]
    assert not any('"' in t or "\n" in t for t in texts)


def test_text_after_a_closing_quote_is_not_altered(cfg, write):
    p = write("t.csv", 'text,label\n"ab"c,a\n' + ROWS)    # the lenient reader makes this 'abc'
    with pytest.raises(DataError, match="malformed row") as e:
        _read(cfg, p)
    assert e.value.line == 2


def test_bom_and_crlf_are_read(cfg, write):
    p = write("t.csv", b"\xef\xbb\xbftext,label\r\n" + ROWS.replace("\n", "\r\n").encode())
    raw = _read(cfg, p)
    assert [ex.text for ex in raw.train] == [f"row {i} words" for i in range(20)]
    assert raw.label_names == ["a", "b"] and [ex.line for ex in raw.train[:2]] == [2, 3]


def test_quoted_crlf_inside_a_field_is_kept(cfg, write):
    p = write("t.csv", b'text,label\r\n"two\r\nlines",a\r\n' + ROWS.replace("\n", "\r\n").encode())
    raw = _read(cfg, p)
    assert raw.train[0].text == "two\r\nlines" and raw.train[1].line == 4


def test_non_utf8_names_the_line(cfg, write):
    p = write("t.csv", ("text,label\n" + ROWS + "caf\xe9,a\n").encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as e:
        _read(cfg, p)
    assert e.value.path == str(p) and e.value.line == 22


def test_header_only_file_names_the_split(cfg, write):
    p = write("t.csv", "text,label\n")
    with pytest.raises(DataError, match="train split is empty") as e:
        _read(cfg, p)
    assert e.value.path == str(p)


def test_duplicate_column_names_are_refused(cfg, write):
    p = write("t.csv", "text,text,label\n" + "".join(f"x{i},y{i},{'ab'[i % 2]}\n" for i in range(20)))
    with pytest.raises(DataError, match="duplicate column") as e:
        _read(cfg, p)
    assert e.value.line == 1 and e.value.column == "text"


def test_duplicate_json_keys_are_a_bad_row(cfg, write):
    rows = [json.dumps({"text": f"w {i}", "label": "ab"[i % 2]}) for i in range(20)]
    rows.insert(2, '{"text": "first", "text": "second", "label": "a"}')
    p = write("t.jsonl", "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="appear twice") as e:
        _read(cfg, p)
    assert e.value.line == 3


def test_fractional_labels_for_classification_point_to_regression(cfg, write):
    p = write("t.csv", "text,label\n" + "".join(f"x {i},{i * 0.37:.2f}\n" for i in range(20)))
    with pytest.raises(DataError, match="task: regression") as e:
        _read(cfg, p)
    assert e.value.path == str(p) and e.value.line == 3          # 0.00 is whole; 0.37 is the first fraction
    cfg.task = "regression"
    assert len(_read(cfg, p).train) == 20


def test_repeated_fractional_classes_stay_classes(cfg, write):
    p = write("t.csv", "text,label\n" + "".join(f"x {i},{1.5 + (i % 3)}\n" for i in range(30)))
    assert _read(cfg, p).label_names == ["1.5", "2.5", "3.5"]


def test_a_50mb_line_is_read_whole(cfg, write):
    big = "w" * 50_000_000
    p = write("t.csv", "text,label\n" + big + ",a\n" + ROWS)
    raw = _read(cfg, p)
    assert len(raw.train[0].text) == 50_000_000 and len(raw.train) == 21


def _images(root, n=3):
    for cls, value in (("a", 0), ("b", 255)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_decompression_bomb_is_a_bad_image(cfg, tmp_path):
    root = _images(tmp_path / "imgs")
    Image.new("1", (20_000, 20_000)).save(root / "a" / "bomb.png")     # 400 M pixels, a few KB on disk
    cfg.task = "image_classification"
    with pytest.raises(DataError, match="DecompressionBomb") as e:
        _read(cfg, root)
    assert e.value.path == str(root / "a" / "bomb.png")


def test_symlink_loop_in_an_image_folder_is_not_followed(cfg, tmp_path):
    root = _images(tmp_path / "imgs")
    os.symlink(root / "b", root / "b" / "loop")              # b/loop/loop/loop/... would never end
    cfg.task = "image_classification"
    raw = _read(cfg, root)
    assert sorted(os.path.relpath(ex.image, root) for ex in raw.train) == [
        f"{c}/{i}.png" for c in "ab" for i in range(3)]
