"""Read what an offline W&B run wrote: the records of its ``run-<id>.wandb`` file and its media files.

The ``.wandb`` file is a LevelDB-style log (a 7-byte ``:W&B`` header, then 32 KiB blocks of records, each with a
7-byte header: CRC32, length, type FULL/FIRST/MIDDLE/LAST) of ``wandb_internal_pb2.Record`` protobufs; this reads
it with W&B's own protobuf definitions, so the tests see exactly what ``wandb sync`` would upload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[pb.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        pos += HEADER
        if kind == 0 and length == 0:
            break
        pending += data[pos:pos + length]
        pos += length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@dataclass
class OfflineRun:
    directory: Path
    run_id: str
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[pb.ArtifactRecord] = field(default_factory=list)

    def artifact(self, kind: str) -> pb.ArtifactRecord:
        found = [a for a in self.artifacts if a.type == kind]
        assert len(found) == 1, [(a.type, a.name) for a in self.artifacts]
        return found[0]

    def table(self, key: str) -> dict[str, Any]:
        """A logged ``wandb.Table``: its JSON file under files/media/table, found from the summary entry."""
        return json.loads((self.directory / "files" / self.summary[key]["path"]).read_text())


def offline_run(wandb_dir: Path) -> OfflineRun:
    """The single offline run under ``wandb_dir`` (a logger's ``<save_dir>/wandb``), its records decoded."""
    runs = sorted(wandb_dir.glob("offline-run-*"))
    assert len(runs) == 1, runs
    log = next(runs[0].glob("run-*.wandb"))
    run = OfflineRun(runs[0], log.stem.removeprefix("run-"))
    for record in read_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.job_type = record.run.job_type
            run.config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            run.config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            for item in record.summary.update:
                keys = list(item.nested_key) or [item.key]
                target = run.summary
                for key in keys[:-1]:
                    target = target.setdefault(key, {})
                target[keys[-1]] = json.loads(item.value_json)
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
    return run


def manifest(artifact: pb.ArtifactRecord) -> dict[str, str]:
    """path -> digest (base64 MD5, as W&B computes it) of every file in the artifact."""
    return {entry.path: entry.digest for entry in artifact.manifest.contents}


def md5_digest(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()
