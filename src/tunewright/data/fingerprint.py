"""A cheap fingerprint of a run's data, recorded in checkpoints so a resume on changed data is caught.

A file is its size and sha256 (a few ms per MB); a folder (images) is the sorted list of its files'
relative paths and sizes; a packaged dataset or anything else is its name, which the config holds
already (the package's own version is in the record's versions)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint_path(value: str | None) -> dict | str | None:
    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return {"size": p.stat().st_size, "sha256": h.hexdigest()}
    if p.is_dir():
        h = hashlib.sha256()
        files = sorted(q for q in p.rglob("*") if q.is_file())
        for q in files:
            h.update(f"{q.relative_to(p)}\0{q.stat().st_size}\n".encode())
        return {"files": len(files), "listing_sha256": h.hexdigest()}
    return f"name:{value}"


def data_fingerprint(data_cfg) -> dict:
    """split -> fingerprint of `data.train`, `data.val`, `data.test`."""
    return {split: fingerprint_path(getattr(data_cfg, split)) for split in ("train", "val", "test")}
