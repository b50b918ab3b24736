"""Reads a W&B offline run (`run-<id>.wandb`) with wandb's own record type, `wandb_internal_pb2.Record`.

wandb 0.31 reads these files only in its Go core (`wandb sync`), which needs a server. The file is a
LevelDB-style log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB blocks of chunks,
each `crc32 (4) | length (2, little-endian) | type (1: full, 2: first, 3: middle, 4: last) | data`,
where the data of one full record (or of its first..last chunks) is one serialized Record.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

BLOCK, HEADER = 32 * 1024, 7


def records(path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, parts = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:          # a block's tail too short for a chunk header: padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        parts += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def summary(run_folder: Path) -> dict:
    """{run_id, exit_code, history: [{key: value}], artifacts: {name: [local paths]}} of one offline run folder."""
    (log,) = Path(run_folder).glob("run-*.wandb")
    out = {"run_id": None, "exit_code": None, "history": [], "artifacts": {}}
    for r in records(log):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run_id"] = r.run.run_id
        elif kind == "exit":
            out["exit_code"] = r.exit.exit_code
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
        elif kind == "artifact":
            out["artifacts"][r.artifact.name] = [c.local_path for c in r.artifact.manifest.contents]
    return out


@pytest.fixture
def read_wandb():
    """`read_wandb(offline_run_folder)` -> its run id, exit code, history rows and artifacts' local paths."""
    return summary
