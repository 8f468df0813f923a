"""Which node embeddings a change makes stale, and re-embedding them: the incremental half of serving.

A new edge changes its two endpoints' buffer rows; a node's last-layer embedding reads its own row and its
neighbours' lower-layer outputs, so the nodes to re-embed are the endpoints plus those that sample them,
`layers - 1` hops out. Beyond `max_fanout` the least recently active of those are marked stale instead and
left to the sweep (bounded work per batch, bounded staleness). The lower layers' outputs are cached in the
embedding store and recomputed only where an input below them changed (the TGL/APAN-style scheme the store's
docstring describes), so a refresh reads K cached neighbours instead of a K x K two-hop tree.
"""

from __future__ import annotations

import torch

from .embedding_store import EmbeddingStore
from .features import USER
from .graph_state import TemporalGraph
from .model import TemporalGAT

# The one fan-out bound (serving, evaluation, the benches): nodes re-embedded per micro-batch beyond its endpoints.
# Past it the least recently active are marked stale and swept between batches: bounded work per batch. An
# evaluation sweeps every stale node before it ranks (exact), so the bound changes its cost, not its figures.
DEFAULT_MAX_FANOUT = 512


class Refresher:
    def __init__(
        self,
        model: TemporalGAT,
        graph: TemporalGraph,
        store: EmbeddingStore,
        *,
        max_fanout: int = DEFAULT_MAX_FANOUT,
        refresh_chunk: int = 8192,
        defer_users: bool = False,
    ):
        """`defer_users`: users reached only as samplers of an endpoint are marked stale instead of re-embedded now
        (a live worker: a user's list is published only with the user's own events, and scoring refreshes a
        stale user first; a user reached again and again is re-embedded once, by the sweep or when ranked)."""
        self.model, self.graph, self.store = model, graph, store
        self.max_fanout, self.refresh_chunk, self.defer_users = max_fanout, refresh_chunk, defer_users

    @property
    def layers(self) -> int:
        return self.model.config.layers

    def affected(self, endpoints: torch.Tensor, hops: int | None = None) -> torch.Tensor:
        """`endpoints` and the nodes that sample them, `hops` out (default `layers - 1`), to re-embed now; beyond
        max_fanout the sampling nodes (the least recently active first) are marked stale instead."""
        endpoints = torch.unique(endpoints)
        hops = self.layers - 1 if hops is None else hops
        reached, frontier = endpoints, endpoints
        for _ in range(hops):
            frontier = self.graph.buffer.samplers_of(frontier)
            # those not reached yet, by a sorted search (a [nodes] mask per hop made each batch O(graph))
            frontier = frontier[~torch.isin(frontier, reached)]
            if frontier.numel() == 0:
                break
            reached = torch.cat([reached, frontier])
        extra = reached[endpoints.numel() :]
        if self.defer_users and extra.numel():
            users = self.graph.node_kind[extra] == USER
            self.store.mark_stale(extra[users])
            extra = extra[~users]
        budget = max(self.max_fanout - endpoints.numel(), 0)
        if extra.numel() > budget:
            recency = self.graph.buffer.reference_time(extra)
            order = torch.argsort(recency, descending=True, stable=True)
            self.store.mark_stale(extra[order[budget:]])
            extra = extra[order[:budget]]
        return torch.unique(torch.cat([endpoints, extra]))

    @torch.no_grad()
    def refresh(self, nodes: torch.Tensor) -> int:
        """Re-embed `nodes` from the current state (batched forwards of refresh_chunk targets), reading the
        cached lower layers (recomputed first where invalid)."""
        nodes = torch.unique(nodes)
        if self.model.training:
            self.model.eval()
        last = self.layers - 1
        for chunk in nodes.split(self.refresh_chunk):
            z, attention = self.model.embed_layer(
                self.graph, last, chunk, lambda below: self._hidden(last, below), attention=True
            )
            self.store.write(chunk, z, attention, self.graph.buffer.nbr[chunk])
        return int(nodes.numel())

    def refresh_all(self) -> int:
        self.store.clear()
        return self.refresh(torch.arange(self.graph.num_nodes, device=self.graph.device))

    def _hidden(self, depth: int, nodes: torch.Tensor) -> torch.Tensor:
        """Layer-`depth` outputs of sorted unique `nodes` (depth 0: the inputs), from the cache where valid."""
        if depth == 0:
            return self.model.node_inputs(self.graph, nodes)
        cache, valid = self.store.hidden[depth - 1], self.store.hidden_fresh[depth - 1]
        missing = nodes[~valid[nodes]]
        for chunk in missing.split(self.refresh_chunk):
            # under bf16 autocast a layer computes in bf16; the cache (and the store) stay float32
            layer = self.model.embed_layer(self.graph, depth - 1, chunk, lambda below: self._hidden(depth - 1, below))
            cache[chunk] = layer.to(cache.dtype)
            valid[chunk] = True
        return cache[nodes]

    def invalidate(self, rows_changed: torch.Tensor, inputs_changed: torch.Tensor | None = None) -> None:
        """Marks the cached layer outputs that depend on changed buffer rows (new edges) or changed inputs (item
        text): a node's layer-(d+1) output reads its own row, its own layer-d output and its neighbours'."""
        dirty = rows_changed
        if inputs_changed is not None and inputs_changed.numel():
            dirty = torch.unique(
                torch.cat([rows_changed, inputs_changed, self.graph.buffer.samplers_of(inputs_changed)])
            )
        for depth in range(self.layers - 1):
            self.store.invalidate_hidden(depth, dirty)
            if depth + 1 < self.layers - 1:
                dirty = torch.unique(torch.cat([rows_changed, dirty, self.graph.buffer.samplers_of(dirty)]))

    def sweep(self, max_nodes: int | None = None) -> int:
        """Refreshes up to `max_nodes` of the nodes the fan-out bound left stale (all when None)."""
        if max_nodes == 0:
            return 0
        return self.refresh(self.store.stale_nodes(max_nodes))

    @torch.no_grad()
    def full_recompute(self) -> torch.Tensor:
        """Every node's embedding in one forward from the current state (what the store must equal)."""
        self.model.eval()
        return self.model.embed_all(self.graph)
