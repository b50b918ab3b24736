"""Property tests of the file readers (hypothesis, fixed seed, bounded time).

1. Whatever text a row holds (commas, quotes, tabs, CR/LF, U+2028, NUL, emoji), a file written by the
   standard writers reads back as exactly those rows, in order, none dropped, merged or altered.
2. Arbitrary bytes never raise anything but a DataError naming the file, and never hang.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tunewright.data.readers import BadRowBudget, Columns, read_file
from tunewright.errors import DataError

COLS = Columns(alternatives=(("text",),), label="label")
# Any character but surrogates (not encodable as UTF-8); text that is blank is an "empty text" error,
# which test 2 covers, so rows here carry at least one visible character.
CHARS = st.characters(exclude_categories=("Cs",))
TEXT = st.text(CHARS, min_size=1, max_size=40).filter(lambda t: t.strip() != "")
LABEL = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="|"), min_size=1,
                max_size=8).filter(lambda t: t.strip() == t and t != "")
ROWS = st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=12)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _table(rows, delimiter: str) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow(["text", "label"])
    w.writerows(rows)
    return buf.getvalue()


def _jsonl(rows, ascii_only: bool) -> str:
    return "".join(json.dumps({"text": t, "label": lab}, ensure_ascii=ascii_only) + "\n" for t, lab in rows)


@seed(20261202)
@FUZZ
@given(rows=ROWS, fmt=st.sampled_from(["csv", "tsv", "jsonl", "jsonl-utf8"]))
def test_written_rows_read_back_exactly(tmp_path_factory, rows, fmt):
    path = tmp_path_factory.mktemp("fuzz") / f"t.{fmt.split('-')[0]}"
    if fmt in ("csv", "tsv"):
        body = _table(rows, "," if fmt == "csv" else "\t")
    else:
        body = _jsonl(rows, ascii_only=fmt == "jsonl")
    path.write_bytes(body.encode("utf-8"))
    budget = BadRowBudget(0)
    got = read_file(path, COLS, budget)
    assert [(ex.text, ex.label) for ex in got] == rows
    assert budget.rows == []
    assert [ex.line for ex in got] == sorted({ex.line for ex in got})     # strictly increasing start lines


@seed(20261202)
@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]),
       max_bad=st.sampled_from([0, 3]))
def test_arbitrary_bytes_give_rows_or_a_data_error(tmp_path_factory, data, suffix, max_bad):
    path = tmp_path_factory.mktemp("bytes") / f"f{suffix}"
    path.write_bytes(data)
    cols = Columns(alternatives=(("text",),), label=None) if suffix == ".txt" else COLS
    try:
        rows = read_file(path, cols, BadRowBudget(max_bad))
    except DataError as e:
        assert e.path == str(path)
        return
    for ex in rows:
        assert ex.path == str(path) and isinstance(ex.text, str) and ex.text.strip()


@seed(20261202)
@FUZZ
@given(rows=ROWS, cut=st.integers(min_value=0, max_value=400))
def test_a_truncated_csv_never_invents_a_row(tmp_path_factory, rows, cut):
    """A file cut short (a crash mid-write) reads as a prefix of its rows, plus at most one bad or
    shortened last row that is reported, never as rows that were not written."""
    body = _table(rows, ",")
    body = body[:max(len("text,label\r\n"), min(cut, len(body)))]
    path = tmp_path_factory.mktemp("cut") / "t.csv"
    path.write_bytes(body.encode("utf-8"))
    budget = BadRowBudget(len(rows) + 1)
    try:
        got = read_file(path, COLS, budget)
    except DataError:
        return
    pairs = [(ex.text, ex.label) for ex in got]
    full = pairs[:-1] if pairs and pairs[-1] not in rows[:len(pairs)] else pairs
    assert full == rows[:len(full)]
    assert len(pairs) - len(full) <= 1                                      # only the last may be cut short
    if pairs != rows[:len(pairs)]:
        text, label = pairs[-1]
        orig_text, orig_label = rows[len(pairs) - 1]
        assert orig_text.startswith(text) or orig_label.startswith(label)   # a prefix of what was written


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x85"])
def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path, sep):
    """str.splitlines() also splits on these; a JSONL line ends only at \\n (or \\r\\n)."""
    path = Path(tmp_path) / "t.jsonl"
    path.write_text(json.dumps({"text": f"a{sep}b", "label": "x"}, ensure_ascii=False) + "\n", encoding="utf-8")
    got = read_file(path, COLS, BadRowBudget(0))
    assert [(ex.text, ex.line) for ex in got] == [(f"a{sep}b", 1)]
