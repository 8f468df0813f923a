"""Model name -> factory for the evaluation harness.

A factory takes a `ModelContext` and returns a fresh `Recommender`. An entry is a function that imports its
model only when called (the baselines) or a "module:function" string imported only when the model is asked for
(the temporal GAT), so listing models stays cheap; `build` names the model and checks that it is a Recommender.

The temporal GAT (model_server/tgat/) is two string entries: `streamrec` and `static_gat` point at
`model_server.tgat.evaluation:build_streamrec` / `:build_static_gat`, each `(context: ModelContext) ->
Recommender`. `register` adds an entry; a string entry whose module or function does not exist raises
ModelNotAvailable, naming what it must provide.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ..contract import Recommender


class ModelNotAvailable(RuntimeError):
    pass


@dataclass
class ModelContext:
    """What a factory may know before the stream starts. n_users / n_items are the id counts of the whole
    stream, only for models that pre-allocate (PyG's TGNMemory); they reveal no event."""

    dataset: str
    n_users: int
    n_items: int
    seed: int = 0
    device: str = "cpu"
    epochs: int | None = None
    batch_size: int = 200  # test events per batch of the harness
    train_batch_size: int = 200  # events (sequences for SASRec) per training step of the trained models
    progress: bool = True
    item_info: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def _pop(context: ModelContext) -> Recommender:
    from ..baselines.popularity import Popularity

    return Popularity()


def _recent_pop(context: ModelContext) -> Recommender:
    from ..baselines.popularity import RecentPopularity

    return RecentPopularity(half_life_s=context.options.get("half_life_s"))


def _edgebank(context: ModelContext) -> Recommender:
    from ..baselines.edgebank import EdgeBank

    return EdgeBank()


def _edgebank_window(context: ModelContext) -> Recommender:
    from ..baselines.edgebank import EdgeBank

    return EdgeBank(window_s=context.options.get("window_s"), time_window=True)


def _itemknn(context: ModelContext) -> Recommender:
    from ..baselines.cooccurrence import ItemCooccurrence

    model = ItemCooccurrence()
    model.name = "itemknn"
    return model


def _tgn(context: ModelContext) -> Recommender:
    from ..baselines.tgn import TGN

    options = {k: context.options[k] for k in ("patience", "lr", "dim", "neighbours") if k in context.options}
    return TGN(
        context.n_users,
        context.n_items,
        epochs=context.epochs or 10,
        batch_size=context.train_batch_size,
        seed=context.seed,
        device=context.device,
        progress=context.progress,
        **options,
    )


def _sasrec(context: ModelContext) -> Recommender:
    from ..baselines.sasrec import SASRec

    options = {
        k: context.options[k] for k in ("patience", "lr", "dim", "max_len", "blocks", "dropout") if k in context.options
    }
    return SASRec(
        epochs=context.epochs or 100,
        batch_size=context.train_batch_size,
        seed=context.seed,
        device=context.device,
        progress=context.progress,
        **options,
    )


def _lightgcn(context: ModelContext) -> Recommender:
    from ..baselines.lightgcn import LightGCN

    options = {k: context.options[k] for k in ("patience", "lr", "dim", "layers", "l2") if k in context.options}
    model = LightGCN(
        epochs=context.epochs or 100,
        train_batch=context.train_batch_size,
        batch_size=context.batch_size,
        seed=context.seed,
        device=context.device,
        progress=context.progress,
        **options,
    )
    texts = [
        info
        for info in (context.item_info or {}).values()
        if info is not None and (info.title or info.category or info.brand)
    ]
    if texts:  # item text, as the temporal GAT gets it (model_server/tgat/evaluation.py)
        model.observe_items(texts)
    return model


def _recency_popularity(context: ModelContext) -> Recommender:
    from ..baselines.recency_popularity import RecencyPopularity

    return RecencyPopularity(batch_size=context.batch_size)


def _poptrack(context: ModelContext) -> Recommender:
    from ..baselines.poptrack import PopTrack

    return PopTrack(decay=context.options.get("decay"), batch_size=context.batch_size)


def _base3(context: ModelContext) -> Recommender:
    from ..baselines.base3 import Base3

    return Base3(batch_size=context.batch_size)


MODELS: dict[str, Callable[[ModelContext], Recommender] | str] = {
    "streamrec": "model_server.tgat.evaluation:build_streamrec",  # the temporal GAT, updated by streaming
    "pop": _pop,
    "recent_pop": _recent_pop,
    "edgebank": _edgebank,
    "edgebank_window": _edgebank_window,
    "itemknn": _itemknn,
    "static_gat": "model_server.tgat.evaluation:build_static_gat",  # the same GAT trained once, never updated
    "tgn": _tgn,
    "recency_popularity": _recency_popularity,
    "poptrack": _poptrack,
    "base3": _base3,
    "sasrec": _sasrec,
    "lightgcn": _lightgcn,
}

DESCRIPTIONS = {
    "streamrec": "temporal GAT, streaming updates (model_server/tgat)",
    "pop": "all-time popularity",
    "recent_pop": "time-decayed popularity (half-life chosen on validation)",
    "edgebank": "EdgeBank, unlimited memory",
    "edgebank_window": "EdgeBank, time window = validation span",
    "itemknn": "incremental item co-occurrence with recency",
    "static_gat": "temporal GAT trained once, never updated",
    "tgn": "TGN (PyG TGNMemory + graph attention), trained on train, early-stopped on validation",
    "recency_popularity": "recency/popularity heuristics of Cornell et al. 2025 (variant chosen on validation)",
    "poptrack": "PopTrack: per-batch decayed global popularity (decay chosen on validation)",
    "base3": "Base3: EdgeBank + PopTrack + co-occurrence interpolated (weights chosen on validation)",
    "sasrec": "SASRec (causal self-attention over each user's last 50 items), trained on train, early-stopped on validation",
    "lightgcn": "LightGCN (3 layers) on the training graph, items' layer 0 fused with their text vectors, never updated",
}


def register(name: str, factory: Callable[[ModelContext], Recommender] | str, description: str = "") -> None:
    MODELS[name] = factory
    if description:
        DESCRIPTIONS[name] = description


def resolve(name: str) -> Callable[[ModelContext], Recommender]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    factory = MODELS[name]
    if callable(factory):
        return factory
    module_name, _, attribute = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ModelNotAvailable(
                f"model {name!r} is not available yet: {module_name} does not exist "
                f"(it must provide {attribute}(context) -> Recommender)"
            ) from None
        raise
    if not hasattr(module, attribute):
        raise ModelNotAvailable(f"model {name!r} is not available yet: {module_name} has no {attribute}(context)")
    return getattr(module, attribute)


def build(name: str, context: ModelContext) -> Recommender:
    model = resolve(name)(context)
    if not isinstance(model, Recommender):
        raise TypeError(f"the factory of {name!r} returned {type(model).__name__}, not a Recommender")
    model.name = name
    return model
