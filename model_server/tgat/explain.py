"""`because`: behind each recommended item, the user's neighbours the model attended to most.

An attended neighbour counts in proportion to the attention it got in the user's last layer times how similar
its embedding is to the recommended item's, so an item is explained by the part of the user's history that
resembles it, not by the same top neighbour for every item.
"""

from __future__ import annotations

import torch

from ..ids import IdMap
from .embedding_store import EmbeddingStore
from .features import USER
from .graph_state import TemporalGraph
from .neighbours import EMPTY


class NodeNames:
    """Node -> user or item id, extended as nodes are added (nodes are never renumbered)."""

    def __init__(self) -> None:
        self._names: list[str] = []

    def of(self, graph: TemporalGraph, users: IdMap, items: IdMap) -> list[str]:
        names = self._names
        if len(names) < graph.num_nodes:
            kinds = graph.node_kind[len(names) :].tolist()
            locals_ = graph.node_local[len(names) :].tolist()
            names.extend((users.ids if kind == USER else items.ids)[local] for kind, local in zip(kinds, locals_))
        return names


@torch.no_grad()
def explain(
    store: EmbeddingStore, node_names: list[str], user_nodes: torch.Tensor, item_nodes: torch.Tensor, limit: int
) -> list[list[list[dict]]]:
    """Per user and recommended item (item_nodes [U, k]): up to `limit` of the user's attended neighbours as
    [{"id", "attention"}], best first. One batched computation; each user's at most K neighbour records are
    built once and shared by its items."""
    attended, attention = store.attended[user_nodes], store.attention[user_nodes]  # [U, K]
    valid = attended != EMPTY
    normalise = torch.nn.functional.normalize
    z_items = normalise(store.embedding[item_nodes], dim=-1)  # [U, k, d]
    z_attended = normalise(store.embedding[attended.clamp(min=0)], dim=-1)  # [U, K, d]
    similarity = torch.bmm(z_items, z_attended.transpose(1, 2))  # cosine [U, k, K]
    weight = attention[:, None, :] * (1.0 + similarity.clamp(min=0))
    weight = weight.masked_fill(~valid[:, None, :], float("-inf"))  # empty slots sort last
    slots = torch.topk(weight, min(limit, weight.shape[-1]), dim=-1).indices  # [U, k, limit]
    attended_rows = attended.tolist()
    attention_rows = ((attention * 1e4).round() / 1e4).tolist()
    counts = valid.sum(1).clamp(max=slots.shape[-1]).tolist()
    explained = []
    for neighbours, weights, count, per_item in zip(attended_rows, attention_rows, counts, slots.tolist()):
        records = [{"id": node_names[n], "attention": a} if n != EMPTY else None for n, a in zip(neighbours, weights)]
        explained.append([[records[s] for s in item_slots[:count]] for item_slots in per_item])
    return explained
