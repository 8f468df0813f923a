"""Checkpoints: weights + config + id maps (+ optionally the neighbour state), versioned by content hash.

`model_version` is a hash of what determines the model's outputs for a given graph state: the config, every
weight tensor and the id -> row maps. Two trainings that end in the same bytes get the same version.

A checkpoint is data, never code: `model.pt` is read with torch's weights-only unpickler (tensors and plain
containers; a pickle that names any other callable is refused), and only after its SHA-256 matched the
`file_sha256` that `metadata.json` records. Anything that does not check out raises CheckpointRejected,
naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..digest import FILE_NAME, METADATA_NAME, CheckpointRejected, file_sha256, verify_checkpoint  # noqa: F401 (re-exported)
from .model import TGATConfig
from .train import TrainConfig

FORMAT = 1


def why_unreadable(error: BaseException) -> str:
    """torch's refusal in one line, without its advice to switch the weights-only check off: that would run
    whatever code the file holds, which is exactly what the refusal protects against."""
    text = str(error).strip()
    if "weights only load failed" in text.lower() or "weights_only" in text:
        return (
            "it holds objects other than tensors and plain containers (rebuilding them would run code from the "
            "file), so it is never loaded: serve a checkpoint written by `streamrec train`"
        )
    first_line = text.splitlines()[0] if text else type(error).__name__
    return f"not a checkpoint of plain tensors and containers ({first_line})"


def read_payload(path: Path) -> dict:
    """The checkpoint's contents through the weights-only unpickler: no code runs, whatever the file holds."""
    import pickle
    import zipfile

    try:
        with warnings.catch_warnings():  # torch's remark on a pickle's protocol: noise beside the refusal
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointRejected(f"{path}: {why_unreadable(exc)}") from None
    if not isinstance(payload, dict) or "meta" not in payload:
        raise CheckpointRejected(f"{path}: not a streamrec checkpoint (no metadata inside)")
    return payload


def content_hash(recommender) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(recommender.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(recommender.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for ids in (
        recommender.users.ids,
        recommender.items.ids,
        recommender.graph.side.categories.ids,
        recommender.graph.side.brands.ids,
    ):
        digest.update(json.dumps(ids).encode())
    digest.update(recommender.graph.node_kind.cpu().numpy().tobytes())
    return "tgat-" + digest.hexdigest()[:16]


def save_checkpoint(recommender, directory, metadata: dict | None = None, include_state: bool = True) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if recommender.model_version == "untrained":
        recommender.model_version = content_hash(recommender)
    meta = {
        "format": FORMAT,
        "model_version": recommender.model_version,
        "name": recommender.name,
        "config": recommender.config.to_dict(),
        "train_config": recommender.train_config.to_dict(),
        "train_report": recommender.train_report,
        **(metadata or {}),
    }
    graph = recommender.graph.state_dict()
    if not include_state:
        graph["buffer"]["nbr"].fill_(-1)
        graph["seen"] = graph["seen"][:0]
        graph["seen_ts"] = graph["seen_ts"][:0]
    payload = {
        "meta": meta,
        "weights": {k: v.cpu() for k, v in recommender.model.state_dict().items()},
        "users": list(recommender.users.ids),
        "items": list(recommender.items.ids),
        "graph": graph,
        "seen": recommender.history.seen.pairs(),
        "purchased": recommender.history.purchased.pairs(),
        "with_state": include_state,
    }
    path = directory / FILE_NAME
    torch.save(payload, path)
    meta_file = {**meta, "file_sha256": file_sha256(path)}  # checked before any later load
    (directory / METADATA_NAME).write_text(json.dumps(meta_file, indent=2, default=str) + "\n")
    return path


@dataclass
class SavedModel:
    """What a checkpoint holds, read and checked; TGATRecommender.load builds the model from it."""

    model_version: str
    config: TGATConfig
    train_config: TrainConfig
    train_report: dict
    weights: dict
    users: list
    items: list
    history: dict  # "seen" / "purchased" -> [n, 2] (user index, item index) pairs
    graph: dict
    with_state: bool
    legacy_seen: torch.Tensor | None  # checkpoints written before the graph kept its seen pairs


def read_checkpoint(path) -> SavedModel:
    """The checkpoint at `path` (a model.pt or its folder), after its digest matched; CheckpointRejected or
    ValueError (another format) otherwise."""
    path = verify_checkpoint(path)
    payload = read_payload(path)
    meta = payload["meta"]
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')} is not {FORMAT}")
    # checkpoints written before the popularity and seen terms existed were trained without them
    config = {"popularity": False, "seen": False, **meta["config"]}
    legacy_seen = None
    if "seen" not in payload["graph"] and payload["with_state"] and len(payload["seen"]):
        legacy_seen = payload["seen"]
    return SavedModel(
        meta["model_version"],
        TGATConfig(**config),
        TrainConfig(**meta["train_config"]),
        meta.get("train_report", {}),
        payload["weights"],
        payload["users"],
        payload["items"],
        {name: payload[name].reshape(-1, 2) for name in ("seen", "purchased")},
        payload["graph"],
        payload["with_state"],
        legacy_seen,
    )
