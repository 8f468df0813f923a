"""Adapters for the evaluation registry (model_server/evaluation/registry.py): `(ModelContext) -> Recommender`.

Item text, category and brand from the context are folded in through observe_items before fit, as the
`items` topic would deliver them in serving. Options understood: dim, heads, layers, k, repeat, popularity, seen, lr,
negatives, in_batch_negatives, patience, max_fanout.
"""

from __future__ import annotations

from . import build_static_gat as _static
from . import build_streamrec as _streaming
from .refresh import DEFAULT_MAX_FANOUT

MODEL_OPTIONS = ("dim", "heads", "layers", "k", "repeat", "popularity", "seen")
TRAIN_OPTIONS = ("lr", "negatives", "patience", "in_batch_negatives")


def _build(factory, context):
    options = context.options or {}
    config = {k: options[k] for k in MODEL_OPTIONS if k in options}
    train = {
        "epochs": context.epochs or 5,
        "batch_size": context.train_batch_size,
        "validation_batch_size": context.batch_size,
        "progress": context.progress,
        **{k: options[k] for k in TRAIN_OPTIONS if k in options},
    }
    model = factory(
        config,
        train,
        seed=context.seed,
        device=context.device,
        max_fanout=options.get("max_fanout", DEFAULT_MAX_FANOUT),
    )
    texts = [
        info
        for info in (context.item_info or {}).values()
        if info is not None and (info.title or info.category or info.brand)
    ]
    if texts:
        model.observe_items(texts)
    return model


def build_streamrec(context):
    return _build(_streaming, context)


def build_static_gat(context):
    return _build(_static, context)
