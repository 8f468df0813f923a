"""Device-side store of the node embeddings, the attention behind them, and their staleness.

Rows grow by doubling. A row is `fresh` once computed and becomes stale when its 2-hop neighbourhood changed
but the fan-out bound kept it out of the immediate refresh; the sweep recomputes stale rows later, and the
number of stale rows is the staleness metric.

`hidden[d]` caches every node's layer-(d+1) output (the layers below the last). A node's layer-1 output reads
only its own row and its neighbours' inputs, so a new edge invalidates it for the edge's two endpoints only;
with the cache, re-embedding a node reads its K neighbours' cached outputs instead of recomputing their K x K
two-hop tree (the incremental scheme of TGL/APAN-style serving: embeddings by layer, recomputed where their
inputs changed). An entry is either exact or marked not `hidden_fresh` and recomputed when read.
"""

from __future__ import annotations

import torch

from .neighbours import EMPTY


class EmbeddingStore:
    def __init__(self, dim: int, k: int, device: torch.device, capacity: int = 1024, hidden_layers: int = 1):
        self.dim, self.k, self.device = dim, k, device
        self.hidden = [torch.zeros(capacity, dim, device=device) for _ in range(hidden_layers)]
        self.hidden_fresh = [torch.zeros(capacity, dtype=torch.bool, device=device) for _ in range(hidden_layers)]
        self.embedding = torch.zeros(capacity, dim, device=device)
        self.attention = torch.zeros(capacity, k, device=device)  # last layer, per buffer slot
        self.attended = torch.full((capacity, k), EMPTY, dtype=torch.long, device=device)  # who was attended
        self.fresh = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.stale = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.stale_count = 0  # rows of `stale` set, kept by every write to it: no scan of every node per batch
        self.num_nodes = 0

    def ensure(self, n: int) -> None:
        if n > self.embedding.shape[0]:
            capacity = max(n, 2 * self.embedding.shape[0])
            for name in ("embedding", "attention", "attended", "fresh", "stale"):
                setattr(self, name, _grown(getattr(self, name), capacity, EMPTY if name == "attended" else 0))
            self.hidden = [_grown(t, capacity, 0) for t in self.hidden]
            self.hidden_fresh = [_grown(t, capacity, 0) for t in self.hidden_fresh]
        self.num_nodes = max(self.num_nodes, n)

    def write(self, nodes: torch.Tensor, z: torch.Tensor, attention: torch.Tensor, attended: torch.Tensor) -> None:
        self.embedding[nodes] = z.detach().to(self.embedding.dtype)  # bf16 under autocast; the store is float32
        self.attention[nodes] = attention.to(self.attention.dtype)
        self.attended[nodes] = attended
        self.fresh[nodes] = True
        self._set_stale(nodes, False)

    def mark_stale(self, nodes: torch.Tensor) -> None:
        self._set_stale(nodes, True)

    def _set_stale(self, nodes: torch.Tensor, value: bool) -> None:
        nodes = torch.unique(nodes)
        changed = int((self.stale[nodes] != value).sum())
        self.stale[nodes] = value
        self.stale_count += changed if value else -changed

    def needing_refresh(self, nodes: torch.Tensor) -> torch.Tensor:
        """Those of `nodes` that are stale or were never computed."""
        return nodes[self.stale[nodes] | ~self.fresh[nodes]]

    def stale_nodes(self, limit: int | None = None) -> torch.Tensor:
        if self.stale_count == 0:  # the common case between bursts: no scan of every node
            return torch.zeros(0, dtype=torch.long, device=self.stale.device)
        nodes = torch.nonzero(self.stale[: self.num_nodes]).squeeze(1)
        return nodes if limit is None else nodes[:limit]

    def staleness(self) -> int:
        return self.stale_count

    def invalidate_hidden(self, depth: int, nodes: torch.Tensor) -> None:
        self.hidden_fresh[depth][nodes] = False

    def clear(self) -> None:
        self.fresh[:] = False
        self.stale[:] = False
        self.stale_count = 0
        for fresh in self.hidden_fresh:
            fresh[:] = False


def _grown(old: torch.Tensor, capacity: int, fill: int) -> torch.Tensor:
    grown = torch.full((capacity,) + tuple(old.shape[1:]), fill, dtype=old.dtype, device=old.device)
    grown[: old.shape[0]] = old
    return grown
