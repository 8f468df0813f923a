"""Model version folders for the tests of streamrec/runtime/model_versions.py and `streamrec models`: a model.pt
of arbitrary bytes and a metadata.json that records its digest. The digest check reads no more than that, so
these tests need no trained model (the e2e tests serve real ones)."""

from __future__ import annotations

import json
from pathlib import Path

from model_server.digest import file_sha256


def write_version(model_dir: Path, name: str, **metadata) -> Path:
    """A version folder whose digest checks out; `metadata` adds fields to metadata.json."""
    folder = Path(model_dir) / name
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(f"weights of {name}".encode())
    meta = {
        "format": 1,
        "model_version": f"tgat-{name}",
        "name": "streamrec",
        **metadata,
        "file_sha256": file_sha256(folder / "model.pt"),
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def tamper(folder: Path) -> None:
    """Alters model.pt after its digest was recorded."""
    with open(Path(folder) / "model.pt", "ab") as checkpoint:
        checkpoint.write(b"\0")
