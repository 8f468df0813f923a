"""Model version folders for the tests of streamrec/runtime/model_versions.py and `streamrec models`: the model.pt
of an untrained temporal GAT (promote checks that a version loads) and a metadata.json that records its digest.
The e2e tests serve trained ones."""

from __future__ import annotations

import json
from pathlib import Path

from model_server.digest import file_sha256

_CHECKPOINT: list[bytes] = []  # one untrained model's checkpoint, written once per test session


def checkpoint_bytes() -> bytes:
    if not _CHECKPOINT:
        import tempfile

        from model_server.tgat.recommender import TGATRecommender

        with tempfile.TemporaryDirectory() as folder:
            _CHECKPOINT.append(TGATRecommender(text=False, device="cpu").save(Path(folder) / "v").read_bytes())
    return _CHECKPOINT[0]


def write_version(model_dir: Path, name: str, **metadata) -> Path:
    """A version folder whose digest checks out; `metadata` adds fields to metadata.json."""
    return _version_folder(model_dir, name, checkpoint_bytes(), **metadata)


def _version_folder(model_dir: Path, name: str, model_pt: bytes, **metadata) -> Path:
    folder = Path(model_dir) / name
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(model_pt)
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


def write_hostile_version(model_dir: Path, name: str, marker: Path) -> Path:
    """A version whose digest checks out but whose model.pt is a pickle that would create `marker` if loaded
    with torch's full unpickler (what a crafted file would do with os.system instead)."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return _version_folder(model_dir, name, pickle.dumps({"meta": Payload()}))
