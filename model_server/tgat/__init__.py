"""Temporal graph attention recommender (TGAT/TGN-style) with incremental re-embedding.

Factories for the evaluation registry: "streamrec" -> build_streamrec, "static_gat" -> build_static_gat.
"""

from __future__ import annotations

from .model import TGATConfig
from .recommender import TGATRecommender, pick_device
from .train import TrainConfig


def _configs(config: dict | TGATConfig | None, train: dict | TrainConfig | None, seed: int):
    config = config if isinstance(config, TGATConfig) else TGATConfig(**(config or {}))
    train = train if isinstance(train, TrainConfig) else TrainConfig(**{"seed": seed, **(train or {})})
    return config, train


def build_streamrec(
    config: dict | TGATConfig | None = None, train: dict | TrainConfig | None = None, *, seed: int = 0, **options
) -> TGATRecommender:
    """The streaming model: fit once, then every observe() updates neighbours and re-embeds affected nodes."""
    config, train = _configs(config, train, seed)
    return TGATRecommender(config, train, seed=seed, **options)


def build_static_gat(
    config: dict | TGATConfig | None = None, train: dict | TrainConfig | None = None, *, seed: int = 0, **options
) -> TGATRecommender:
    """The same model trained once; observe() after fit only registers ids (no neighbour/embedding updates)."""
    config, train = _configs(config, train, seed)
    model = TGATRecommender(config, train, seed=seed, frozen=True, **options)
    model.name = "static_gat"
    return model


def load_recommender(path, device: str = "auto", **options) -> TGATRecommender:
    return TGATRecommender.load(path, device, **options)


__all__ = [
    "TGATConfig",
    "TrainConfig",
    "TGATRecommender",
    "build_streamrec",
    "build_static_gat",
    "load_recommender",
    "pick_device",
]
