"""A checkpoint is data, never code: a crafted pickle does not run, an altered or corrupt file is refused with its
path and the reason, and only a file whose digest matches its metadata.json is loaded."""

import json
import pickle

import pytest

from model_server.tgat.checkpoint import CheckpointRejected, file_sha256, verify_checkpoint
from model_server.tgat.recommender import TGATRecommender


class _Payload:
    """Unpickling this calls open(marker, "w"): what a crafted model.pt would do with os.system instead."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _write(folder, data: bytes, digest: str | None = "match"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(data)
    meta = {"format": 1, "model_version": "tgat-x"}
    if digest is not None:
        meta["file_sha256"] = file_sha256(folder / "model.pt") if digest == "match" else digest
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder / "model.pt"


def test_a_crafted_pickle_with_a_matching_digest_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "payload-ran"
    path = _write(tmp_path / "evil", pickle.dumps({"meta": _Payload(marker)}))
    assert verify_checkpoint(path) == path  # the digest matches: the weights-only reader must stop it
    with pytest.raises(CheckpointRejected, match=str(path)) as refused:
        TGATRecommender.load(path)
    assert not marker.exists()
    # one line that says why, never torch's advice to switch its weights-only check off (that would run it)
    assert "\n" not in str(refused.value) and "weights_only" not in str(refused.value)
    assert "never loaded" in str(refused.value)


def test_a_corrupt_file_is_refused_naming_its_path(tmp_path):
    path = _write(tmp_path / "corrupt", b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointRejected) as error:
        TGATRecommender.load(path)
    assert str(path) in str(error.value) and "Traceback" not in str(error.value)


def test_an_altered_file_or_one_without_a_digest_is_refused_before_reading(tmp_path):
    altered = _write(tmp_path / "altered", b"whatever", digest="0" * 64)
    with pytest.raises(CheckpointRejected, match="is not the 0000000000000000… that metadata.json records"):
        verify_checkpoint(altered)
    undigested = _write(tmp_path / "old", b"whatever", digest=None)
    with pytest.raises(CheckpointRejected, match="records no file_sha256"):
        verify_checkpoint(undigested)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "model.pt").write_bytes(b"x")
    with pytest.raises(CheckpointRejected, match="no readable metadata.json"):
        verify_checkpoint(tmp_path / "bare")
