"""The model's graph state: one node space for users and items, the recent-neighbour buffer, item side info.

Users and items share one node index space (assigned as the recommender's id maps grow), so the buffer,
the sampler and the embedding store need not know node kinds. Everything here is a function of the events
and item metadata folded in so far, which is what makes an incremental refresh equal a full recompute.

Besides the K-slot buffer the graph keeps every (user, item) pair that has an edge (`seen`, one sorted int64
key per pair, as the graph store's edges minus type and time): the score uses it to tell items a user already
interacted with but that fell out of the user's K recent slots (rewatches are rare on MovieLens, repeats
dominate Wikipedia; the model learns which), and `degree`, each node's number of distinct neighbours (the
all-time popularity of an item). Both are rebuilt from the graph store's edges like the buffer.
"""
from __future__ import annotations

import torch

from stream.events import EVENT_TYPES

from ..pairs import LOW, SHIFT, merge_sorted, new_keys, rows_of
from .features import ITEM, USER, ItemSideInfo
from .neighbours import RecentNeighbours, tie_keys

NUM_TYPES = len(EVENT_TYPES) + 1  # the last index is any other type
_TYPE_INDEX = {name: k for k, name in enumerate(EVENT_TYPES)}


def type_index(types: list[str]) -> torch.Tensor:
    return torch.tensor([_TYPE_INDEX.get(t, len(EVENT_TYPES)) for t in types], dtype=torch.long)


class TemporalGraph:
    def __init__(self, k: int, text_dim: int, device: torch.device):
        self.device = device
        self.buffer = RecentNeighbours(k, device)
        self.side = ItemSideInfo(text_dim, device)
        self.node_kind = torch.zeros(0, dtype=torch.long, device=device)
        self.node_local = torch.zeros(0, dtype=torch.long, device=device)
        self.user_node = torch.zeros(0, dtype=torch.long, device=device)
        self.item_node = torch.zeros(0, dtype=torch.long, device=device)
        self.seen = torch.zeros(0, dtype=torch.long, device=device)  # sorted unique (user node, item node) keys
        self.degree = torch.zeros(0, dtype=torch.long, device=device)  # distinct neighbours per node (all time)

    @property
    def num_nodes(self) -> int:
        return self.buffer.num_nodes

    @property
    def num_users(self) -> int:
        return self.user_node.shape[0]

    @property
    def num_items(self) -> int:
        return self.item_node.shape[0]

    def sync(self, user_ids: list[str], item_ids: list[str]) -> torch.Tensor:
        """Give a node to every user and item index not seen yet (users first); returns the new nodes."""
        start = self.num_nodes
        new_users, new_items = user_ids[self.num_users:], item_ids[self.num_items:]
        if not new_users and not new_items:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        device = self.device
        n_u, n_i = len(new_users), len(new_items)
        nodes_u = torch.arange(start, start + n_u, device=device)
        nodes_i = torch.arange(start + n_u, start + n_u + n_i, device=device)
        self.node_kind = torch.cat([self.node_kind, torch.full((n_u,), USER, device=device),
                                    torch.full((n_i,), ITEM, device=device)])
        self.node_local = torch.cat([self.node_local, torch.arange(self.num_users, self.num_users + n_u, device=device),
                                     torch.arange(self.num_items, self.num_items + n_i, device=device)])
        self.user_node = torch.cat([self.user_node, nodes_u])
        self.item_node = torch.cat([self.item_node, nodes_i])
        self.buffer.add_nodes(tie_keys(new_users + new_items))
        self.degree = torch.cat([self.degree, torch.zeros(n_u + n_i, dtype=torch.long, device=device)])
        self.side.ensure(self.num_items)
        return torch.cat([nodes_u, nodes_i])

    def clear(self) -> None:
        """Forget every edge (nodes and item side info stay)."""
        self.buffer.clear()
        self.seen = self.seen[:0]
        self.degree.zero_()

    def newest_time(self) -> torch.Tensor:
        """The newest event time folded in (0 when empty): every event sits in slot 0 of its endpoints' rows
        when inserted and only newer edges displace it, so this is the max of slot 0 — graph state only."""
        n = self.num_nodes
        if n == 0:
            return torch.zeros((), dtype=torch.long, device=self.device)
        return self.buffer.ts[:n, 0].max()

    def seen_pairs(self, user_nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in user_nodes, item node) for every item each user has an edge to (vectorised range reads)."""
        return rows_of(self.seen, user_nodes)

    def insert(self, users: torch.Tensor, items: torch.Tensor, types: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """Fold interactions (user index, item index, type index, epoch ms) into both endpoints' rows."""
        u = self.user_node[users.to(self.device)]
        i = self.item_node[items.to(self.device)]
        types, ts = types.to(self.device), ts.to(self.device)
        keys = new_keys(self.seen, (u << SHIFT) | i)
        self._count_pairs(keys)
        self.seen = merge_sorted(self.seen, keys)
        return self.buffer.insert(torch.cat([u, i]), torch.cat([i, u]), torch.cat([types, types]), torch.cat([ts, ts]))

    def state_dict(self) -> dict:
        return {"node_kind": self.node_kind.cpu(), "node_local": self.node_local.cpu(),
                "buffer": self.buffer.state_dict(), "seen": self.seen.cpu(), "side": self.side.state_dict(self.num_items)}

    def load_state_dict(self, state: dict) -> None:
        kind, local = state["node_kind"].to(self.device), state["node_local"].to(self.device)
        self.node_kind, self.node_local = kind, local
        self.user_node = torch.nonzero(kind == USER).squeeze(1)[torch.argsort(local[kind == USER])]
        self.item_node = torch.nonzero(kind == ITEM).squeeze(1)[torch.argsort(local[kind == ITEM])]
        self.buffer.load_state_dict(state["buffer"])
        self.set_seen(state.get("seen", torch.zeros(0, dtype=torch.long)).to(self.device))
        self.side.load_state_dict(state["side"])
        self.side.ensure(self.num_items)

    def set_seen(self, keys: torch.Tensor) -> None:
        """Replace the (user, item) pair set (sorted unique keys) and recount the degrees from it."""
        self.seen = torch.unique(keys)
        self.degree = torch.zeros(self.num_nodes, dtype=torch.long, device=self.device)
        self._count_pairs(self.seen)

    def _count_pairs(self, keys: torch.Tensor) -> None:
        """Adds one to the degree of both nodes of every (new) pair key."""
        ones = torch.ones(keys.numel(), dtype=torch.long, device=self.device)
        self.degree.index_add_(0, keys >> SHIFT, ones)
        self.degree.index_add_(0, keys & LOW, ones)
