"""Device-side most-recent-K neighbour buffer: the model's view of the graph store's neighbourhoods.

The graph store keeps one edge per (user, item, type) with count, first_ts and last_ts; the neighbourhood of
a node is its K edges with the largest last_ts, ties broken by the neighbour's id ascending (then by type).
This buffer keeps exactly that, per node, as three [capacity, K] tensors, so that it can be compared
slot for slot with `ORDER BY r.last_ts DESC, neighbour.id LIMIT K`. Like GraphJet (Sharma et al., VLDB 2016)
and TGN's LastNeighborLoader (Rossi et al., 2020) it lives in memory next to the model; unlike
LastNeighborLoader it grows with the node set and de-duplicates repeated (neighbour, type) edges.

Updates are vectorised over a micro-batch (no per-event Python loop): the rows of the touched nodes are
merged with the new edges, duplicates collapse to their newest timestamp, one lexicographic sort orders
every candidate, and the first K per node are written back. Merging is order-independent (the K best of a
union equal the K best of the K best and the rest), so a rebuild from the graph store's edges in any order
and the streaming path give the same rows.
"""

from __future__ import annotations

import torch

from .sampler_index import SamplerIndex

EMPTY = -1
TIE_KEY_PARTS = 3  # neighbour ids are compared on their first 3 x 7 = 21 UTF-8 bytes (then node index)


def tie_keys(ids: list[str]) -> torch.Tensor:
    """[len(ids), 3] int64 keys whose lexicographic order is the UTF-8 byte order of the ids (first 21 bytes)."""
    rows = []
    for text in ids:
        raw = text.encode("utf-8")[: 7 * TIE_KEY_PARTS].ljust(7 * TIE_KEY_PARTS, b"\0")
        rows.append([int.from_bytes(raw[7 * p : 7 * p + 7], "big") for p in range(TIE_KEY_PARTS)])
    return torch.tensor(rows, dtype=torch.long).reshape(-1, TIE_KEY_PARTS)


class RecentNeighbours:
    def __init__(self, k: int, device: torch.device | str = "cpu", capacity: int = 1024):
        self.k = k
        self.device = torch.device(device)
        self.num_nodes = 0
        self.nbr = torch.full((capacity, k), EMPTY, dtype=torch.long, device=self.device)
        self.etype = torch.zeros((capacity, k), dtype=torch.long, device=self.device)
        self.ts = torch.zeros((capacity, k), dtype=torch.long, device=self.device)
        self.tie = torch.zeros((capacity, TIE_KEY_PARTS), dtype=torch.long, device=self.device)
        self.samplers = SamplerIndex(self.device)  # kept in step with every row written below

    # -- nodes -----------------------------------------------------------------------------------
    def add_nodes(self, keys: torch.Tensor) -> None:
        """Append nodes; `keys` are their tie keys (see tie_keys), in node-index order."""
        n = self.num_nodes + keys.shape[0]
        if n > self.nbr.shape[0]:
            capacity = max(n, 2 * self.nbr.shape[0])
            self.nbr = _grow(self.nbr, capacity, EMPTY)
            self.etype = _grow(self.etype, capacity, 0)
            self.ts = _grow(self.ts, capacity, 0)
            self.tie = _grow(self.tie, capacity, 0)
        self.tie[self.num_nodes : n] = keys.to(self.device)
        self.num_nodes = n

    def clear(self) -> None:
        self.nbr[: self.num_nodes] = EMPTY
        self.etype[: self.num_nodes] = 0
        self.ts[: self.num_nodes] = 0
        self.samplers.rebuild(self.nbr[:0])

    # -- edges -----------------------------------------------------------------------------------
    def insert(self, src: torch.Tensor, dst: torch.Tensor, etype: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """Fold directed edges src -> dst into src's row; returns the nodes whose row was touched (sorted)."""
        device = self.device
        src, dst, etype, ts = (t.to(device=device, dtype=torch.long) for t in (src, dst, etype, ts))
        nodes = torch.unique(src)
        if nodes.numel() == 0:
            return nodes
        old = self.nbr[nodes]
        valid = old != EMPTY
        c_src = torch.cat([nodes[:, None].expand_as(old)[valid], src])
        c_dst = torch.cat([old[valid], dst])
        c_type = torch.cat([self.etype[nodes][valid], etype])
        c_ts = torch.cat([self.ts[nodes][valid], ts])

        # one edge per (src, dst, type), holding its newest timestamp (the graph store's last_ts)
        n_types = int(c_type.max()) + 1
        n_nodes = self.num_nodes
        key = (c_src * n_nodes + c_dst) * n_types + c_type
        unique_key, inverse = torch.unique(key, return_inverse=True)
        newest = torch.full_like(unique_key, torch.iinfo(torch.long).min)
        newest.scatter_reduce_(0, inverse, c_ts, reduce="amax")
        e_type = unique_key % n_types
        e_dst = (unique_key // n_types) % n_nodes
        e_src = unique_key // (n_types * n_nodes)

        # order: src asc, last_ts desc, neighbour id asc, neighbour index asc, type asc (stable sorts, last key first)
        order = torch.argsort(e_type, stable=True)
        for column in [e_dst] + [self.tie[e_dst, p] for p in reversed(range(TIE_KEY_PARTS))]:
            order = order[torch.argsort(column[order], stable=True)]
        order = order[torch.argsort(-newest[order], stable=True)]
        order = order[torch.argsort(e_src[order], stable=True)]
        s_src, s_dst, s_type, s_ts = e_src[order], e_dst[order], e_type[order], newest[order]

        first = torch.ones_like(s_src, dtype=torch.bool)
        first[1:] = s_src[1:] != s_src[:-1]
        starts = torch.nonzero(first).squeeze(1)
        rank = torch.arange(s_src.numel(), device=device) - starts[torch.cumsum(first.long(), 0) - 1]
        keep = rank < self.k

        self.nbr[nodes] = EMPTY
        self.etype[nodes] = 0
        self.ts[nodes] = 0
        rows, slots = s_src[keep], rank[keep]
        self.nbr[rows, slots] = s_dst[keep]
        self.etype[rows, slots] = s_type[keep]
        self.ts[rows, slots] = s_ts[keep]
        self.samplers.update(nodes, old, self.nbr[nodes])
        return nodes

    def forget_before(self, cutoff: int) -> torch.Tensor:
        """Empties the slots whose edge is older than `cutoff`; a row is newest first, so they are its tail and
        the slots kept stay in order. Returns the nodes whose row changed (sorted)."""
        n = self.num_nodes
        expired = (self.ts[:n] < cutoff) & (self.nbr[:n] != EMPTY)
        nodes = torch.nonzero(expired.any(1)).squeeze(1)
        if nodes.numel():
            old, gone = self.nbr[nodes], expired[nodes]
            self.nbr[nodes] = old.masked_fill(gone, EMPTY)
            self.etype[nodes] = self.etype[nodes].masked_fill(gone, 0)
            self.ts[nodes] = self.ts[nodes].masked_fill(gone, 0)
            self.samplers.update(nodes, old, self.nbr[nodes])
        return nodes

    # -- reads -----------------------------------------------------------------------------------
    def rows(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(neighbour, type, last_ts) as [len(nodes), K]; empty slots hold neighbour -1."""
        return self.nbr[nodes], self.etype[nodes], self.ts[nodes]

    def reference_time(self, nodes: torch.Tensor) -> torch.Tensor:
        """Timestamp of each node's newest edge (slot 0): the 'now' of its state, never the wall clock."""
        return self.ts[nodes, 0]

    def samplers_of(self, nodes: torch.Tensor) -> torch.Tensor:
        """Nodes whose buffer holds any of `nodes` (those whose embedding reads them), sorted."""
        if nodes.numel() == 0:
            return nodes
        return self.samplers.samplers_of(nodes)

    def edge_count(self) -> int:
        return int((self.nbr[: self.num_nodes] != EMPTY).sum())

    def state_dict(self) -> dict:
        n = self.num_nodes
        return {
            "k": self.k,
            "nbr": self.nbr[:n].cpu().clone(),
            "etype": self.etype[:n].cpu().clone(),
            "ts": self.ts[:n].cpu().clone(),
            "tie": self.tie[:n].cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        n = state["nbr"].shape[0]
        self.num_nodes = 0
        self.add_nodes(state["tie"])
        self.nbr[:n], self.etype[:n], self.ts[:n] = (state[k].to(self.device) for k in ("nbr", "etype", "ts"))
        self.samplers.rebuild(self.nbr[:n])


def _grow(tensor: torch.Tensor, capacity: int, fill: int) -> torch.Tensor:
    grown = torch.full((capacity,) + tuple(tensor.shape[1:]), fill, dtype=tensor.dtype, device=tensor.device)
    grown[: tensor.shape[0]] = tensor
    return grown
