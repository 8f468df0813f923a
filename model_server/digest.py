"""SHA-256 of a file, read in 1 MiB blocks (data-set checksums, checkpoint digests), and the digest check of a
checkpoint. Imports no torch: the worker's event loop checks a version before its model host loads it, and
must stay a small process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FILE_NAME = "model.pt"
METADATA_NAME = "metadata.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CheckpointRejected(ValueError):
    """A checkpoint that is not loaded: unreadable, altered, or not plain tensors and containers."""


def verify_checkpoint(path: Path) -> Path:
    """The model.pt of `path` (a file or its folder) when its digest matches metadata.json's; else raises."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        recorded = json.loads((path.parent / METADATA_NAME).read_text()).get("file_sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointRejected(f"{path}: no readable {METADATA_NAME} beside it ({exc})") from None
    if not recorded:
        raise CheckpointRejected(
            f"{path}: {METADATA_NAME} records no file_sha256 (written before checkpoints "
            "carried a digest): train it again with `streamrec train`"
        )
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise CheckpointRejected(f"{path}: cannot read it ({exc})") from None
    if actual != recorded:
        raise CheckpointRejected(
            f"{path}: its SHA-256 {actual[:16]}… is not the {recorded[:16]}… that "
            f"{METADATA_NAME} records (altered or incomplete)"
        )
    return path
