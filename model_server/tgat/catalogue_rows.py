"""The items' buffer rows and degrees, item-major, kept in step with the graph for the catalogue-wide prior.

Ranking reads every catalogue item's K buffered edge times and its degree (model.py's popularity head) for
every batch. Gathered from the node-major buffer, that cost ~0.5 ms per batch on REES46's 6.5k items whatever
the batch's size; a batch changes only its own endpoints' rows, so here the items' inputs are copied once and
copied again only where a batch (or a new item) changed them. The graph tells this cache what changed
(graph_state.py); a reset (clear, load, a new pair set) copies everything on the next read.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .features import ITEM
from .neighbours import EMPTY


class PriorInputs(NamedTuple):
    ts: torch.Tensor  # [n_items, K] the buffered edges' times (0 in an empty slot)
    valid: torch.Tensor  # [n_items, K] float 1.0 where a slot holds an edge
    log_degree: torch.Tensor  # [n_items, 1] float log(1 + distinct users) / 5


class CatalogueRows:
    def __init__(self, k: int, device: torch.device):
        self.ts = torch.zeros(0, k, dtype=torch.long, device=device)
        self.valid = torch.zeros(0, k, device=device)
        self.log_degree = torch.zeros(0, 1, device=device)
        self.rows = 0  # items copied so far (the tensors above grow by doubling)
        self._changed: list[torch.Tensor] = []  # nodes whose row or degree changed since the last read
        self._reset = True

    def changed(self, nodes: torch.Tensor) -> None:
        if not self._reset:
            self._changed.append(nodes)

    def reset(self) -> None:
        self._reset, self._changed = True, []

    def read(self, graph, n_items: int) -> PriorInputs:
        """The first n_items items' inputs (item-index order), equal to gathering them from the graph now."""
        if self._reset:
            self.rows, self._reset = 0, False
        elif self._changed:
            nodes = torch.unique(torch.cat(self._changed))
            items = nodes[graph.node_kind[nodes] == ITEM]
            local = graph.node_local[items]
            self._copy(graph, items[local < self.rows], local[local < self.rows])
        self._changed = []
        if n_items > self.rows:
            self._grow(n_items)
            local = torch.arange(self.rows, n_items, device=self.ts.device)
            self._copy(graph, graph.item_node[local], local)
            self.rows = n_items
        return PriorInputs(self.ts[:n_items], self.valid[:n_items], self.log_degree[:n_items])

    def _copy(self, graph, item_nodes: torch.Tensor, local: torch.Tensor) -> None:
        nbr, _, ts = graph.buffer.rows(item_nodes)
        self.ts[local] = ts
        self.valid[local] = (nbr != EMPTY).to(self.valid.dtype)
        self.log_degree[local] = torch.log1p(graph.degree[item_nodes].to(torch.float32))[:, None] / 5.0

    def _grow(self, n: int) -> None:
        if n <= self.ts.shape[0]:
            return
        capacity = max(n, 2 * self.ts.shape[0])
        for name in ("ts", "valid", "log_degree"):
            old = getattr(self, name)
            grown = torch.zeros((capacity,) + tuple(old.shape[1:]), dtype=old.dtype, device=old.device)
            grown[: self.rows] = old[: self.rows]
            setattr(self, name, grown)
