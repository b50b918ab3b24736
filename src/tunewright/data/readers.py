"""Read CSV, TSV, JSONL and plain-text files and image folders into ``Example`` rows.

Parsing uses the ``csv`` and ``json`` modules rather than pandas, because pandas silently
coerces (``"NA"`` becomes NaN, ``"007"`` becomes 7, ragged rows are padded). Every malformed row
is a ``DataError`` naming the file, its 1-based line and the column. With ``max_bad_rows: N``
up to N such rows are skipped and recorded as ``BadRow`` (nothing is dropped silently); the
(N+1)-th raises. File-level problems (missing file, empty file, a missing column in a header)
always raise: skipping them would skip everything.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunewright.errors import DataError

TABLE_FORMATS = {".csv": ",", ".tsv": "\t"}
JSONL_FORMATS = (".jsonl", ".ndjson")
TEXT_FORMATS = (".txt",)          # causal LM only: one example per non-blank line
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SUPPORTED = tuple(TABLE_FORMATS) + JSONL_FORMATS + TEXT_FORMATS

csv.field_size_limit(2**31 - 1)   # long documents are fine; the default limit is 128 KiB


@dataclass
class Example:
    """One input row, with where it came from (for error messages and failure-case reports).

    ``line`` is the 1-based line where the row starts (None for an image file, whose path says
    it all). ``label`` is raw as read (a string from CSV; any JSON value from JSONL) until
    ``labels.parse_labels`` normalises it; ``target`` is what the model learns. Exactly one
    of text / image / (prompt, response) is the input.
    """

    path: str
    line: Optional[int]
    text: Optional[str] = None
    label: Any = None
    image: Any = None                 # a file path (str) or a uint8 array (H, W) / (H, W, 3)
    prompt: Optional[str] = None
    response: Optional[str] = None
    target: Any = None                # set by labels.assign_targets: index, indices or float

    @property
    def raw_input(self) -> Any:
        """What a person would recognise: the text, the prompt, or the image file."""
        if self.text is not None:
            return self.text
        if self.prompt is not None:
            return self.prompt
        return self.image if isinstance(self.image, str) else f"{self.path}#{self.line}"


@dataclass(frozen=True)
class BadRow:
    path: str
    line: Optional[int]
    reason: str


class BadRowBudget:
    """Counts skipped rows across all files; the (max_bad + 1)-th bad row raises its DataError."""

    def __init__(self, max_bad: int):
        self.max_bad = max_bad
        self.rows: list[BadRow] = []

    def skip(self, err: DataError) -> None:
        if len(self.rows) >= self.max_bad:
            if self.max_bad == 0:
                raise err
            more = DataError(f"{_reason(err)} (more than data.max_bad_rows={self.max_bad} bad "
                             "rows)", path=err.path, line=err.line, column=err.column)
            raise more from err
        self.rows.append(BadRow(str(err.path), err.line, _reason(err)))


def _reason(err: DataError) -> str:
    """The message without the "file:line (column 'c'): " prefix DataError puts in front."""
    msg = str(err)
    probe = str(DataError("", path=err.path, line=err.line, column=err.column))
    return msg[len(probe):] if probe and msg.startswith(probe) else msg


@dataclass(frozen=True)
class Columns:
    """Which fields a row needs. ``alternatives``: sets of columns, the first one present wins
    (causal LM: prompt+response, else text)."""

    alternatives: tuple[tuple[str, ...], ...]
    label: Optional[str]              # None: no label (causal LM)
    required_nonempty: tuple[str, ...] = ()


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte {e.start}: {e.reason})", path=str(path),
                        line=line) from None


def _lines(text: str) -> list[str]:
    """Physical lines, ended by \\n, \\r\\n or \\r only. ``str.splitlines`` also ends a line at U+2028, \\x0c,
    \\x85 and more, which may stand inside a JSON string, so one valid row would become two bad ones."""
    return [ln.rstrip("\r\n") for ln in io.StringIO(text, newline="").readlines()]


def _pick(fields: list[str], cols: Columns, path: Path, line: int | None) -> tuple[str, ...]:
    """The first column set present in ``fields``; else a DataError naming what exists."""
    for alt in cols.alternatives:
        if all(c in fields for c in alt) and (cols.label is None or cols.label in fields):
            return alt
    wanted = " or ".join("+".join(a) for a in cols.alternatives)
    if cols.label is not None:
        wanted = f"({wanted}) and {cols.label!r}"
    # name the first missing column of the last (simplest) alternative: "text", then "label"
    needed = cols.alternatives[-1] + ((cols.label,) if cols.label is not None else ())
    missing = next((c for c in needed if c not in fields), None)
    raise DataError(f"missing column: need {wanted}; the columns are {fields}. Set "
                    "data.text_column / data.label_column (or prompt_column / response_column).",
                    path=str(path), line=line, column=missing)


def _make(path: Path, line: int, row: dict, alt: tuple[str, ...], cols: Columns) -> Example:
    """Example from a parsed row; raises DataError for an empty or non-string input field."""
    values = {}
    for c in alt:
        v = row[c]
        if not isinstance(v, str):
            raise DataError(f"expected text, got {type(v).__name__} {v!r}", path=str(path),
                            line=line, column=c)
        if v.strip() == "":
            raise DataError("empty text", path=str(path), line=line, column=c)
        values[c] = v
    label = row[cols.label] if cols.label is not None else None
    if len(alt) == 2:
        return Example(str(path), line, prompt=values[alt[0]], response=values[alt[1]],
                       label=label)
    return Example(str(path), line, text=values[alt[0]], label=label)


def read_table(path: Path, cols: Columns, budget: BadRowBudget) -> list[Example]:
    """CSV/TSV with a header row. A record may span lines (quoted newlines); ``line`` is where
    it starts. Blank lines are not rows and are skipped."""
    text = _decode(path)
    # strict: a quote that closes and is then followed by anything but a delimiter or the end of the
    # line is an error. The default (non-strict) reader glues such a record onto the next rows and
    # silently drops or moves quote characters, so one broken row would eat the rows after it.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=TABLE_FORMATS[path.suffix.lower()],
                        strict=True)
    try:
        header = next(reader, None)
        while header == []:
            header = next(reader, None)
    except csv.Error as e:
        raise DataError(f"cannot parse the header: {e}", path=str(path),
                        line=reader.line_num) from None
    if header is None:
        raise DataError("empty file (no header row)", path=str(path))
    header = [h.strip() for h in header]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:   # a dict of the row would keep the last of them and drop the others without a word
        raise DataError(f"duplicate column name(s) {twice} in the header; the columns are {header}",
                        path=str(path), line=reader.line_num, column=twice[0])
    alt = _pick(header, cols, path, reader.line_num)
    out, start = [], reader.line_num + 1
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            # The bad record may have swallowed the lines after its start (an unclosed quote runs on):
            # they are named here and count as this one bad row, never read as something else.
            span = f"; the record runs from line {start} to line {reader.line_num}" if reader.line_num > start else ""
            budget.skip(DataError(f"malformed row: {e}{span} (is a quote left open, or text after a closing "
                                  f"quote?)", path=str(path), line=start))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not rec:
            continue
        try:
            if len(rec) != len(header):
                missing = header[len(rec)] if len(rec) < len(header) else None
                raise DataError(f"expected {len(header)} fields ({', '.join(header)}), got "
                                f"{len(rec)}", path=str(path), line=line, column=missing)
            out.append(_make(path, line, dict(zip(header, rec)), alt, cols))
        except DataError as e:
            budget.skip(e)
    return out


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads keeps the last of two equal keys silently; a row with a key twice is a bad row."""
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise _DuplicateKey(f"key(s) {twice} appear twice in one object")
    return dict(pairs)


def read_jsonl(path: Path, cols: Columns, budget: BadRowBudget) -> list[Example]:
    """One JSON object per line. Blank lines are skipped; anything else malformed is a bad row."""
    out = []
    for line, raw in enumerate(_lines(_decode(path)), start=1):
        if not raw.strip():
            continue
        try:
            try:
                obj = json.loads(raw, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON at character {e.colno}: {e.msg}", path=str(path),
                                line=line) from None
            except _DuplicateKey as e:
                raise DataError(str(e), path=str(path), line=line) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}",
                                path=str(path), line=line)
            alt = _pick(list(obj), cols, path, line)
            out.append(_make(path, line, obj, alt, cols))
        except DataError as e:
            budget.skip(e)
    return out


def read_lines(path: Path, cols: Columns, budget: BadRowBudget) -> list[Example]:
    """Plain text for causal LM: each non-blank line is one example (whitespace kept)."""
    if cols.label is not None:
        raise DataError("a .txt file has no labels; use CSV/TSV/JSONL with a label column",
                        path=str(path))
    return [Example(str(path), i, text=raw) for i, raw in
            enumerate(_lines(_decode(path)), start=1) if raw.strip()]


def read_image_folder(root: Path, budget: BadRowBudget) -> list[Example]:
    """One subfolder per class; each image is opened and fully decoded once (``.load()``) so a
    corrupt file fails now, naming the file, not mid-epoch. Other files are ignored."""
    from PIL import Image

    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError("an image folder needs one subfolder per class; found none",
                        path=str(root))
    out = []
    for cls in classes:
        files = sorted(p for p in cls.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                       and p.is_file() and not p.name.startswith("."))
        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()
            except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError...)
                budget.skip(DataError(f"unreadable image: {type(e).__name__}: {e}", path=str(f)))
                continue
            out.append(Example(str(f), None, image=str(f), label=cls.name))
    return out


def read_file(path: str | Path, cols: Columns, budget: BadRowBudget) -> list[Example]:
    """Dispatch on the path: an image folder, or a file by its extension. A 0-byte file is a
    DataError here; a file with no usable rows returns [] and ``read_data`` names the split."""
    path = Path(path)
    if path.is_dir():
        rows = read_image_folder(path, budget)
    elif not path.exists():
        raise DataError("no such file or folder", path=str(path))
    else:
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED:
            raise DataError(f"unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED)}"
                            " or an image folder", path=str(path))
        if path.stat().st_size == 0:
            raise DataError("empty file", path=str(path))
        if suffix in TABLE_FORMATS:
            rows = read_table(path, cols, budget)
        elif suffix in JSONL_FORMATS:
            rows = read_jsonl(path, cols, budget)
        else:
            rows = read_lines(path, cols, budget)
    return rows  # may be empty (a header and no rows): the caller names the split
