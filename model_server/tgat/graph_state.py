"""The model's graph state: one node space for users and items, the recent-neighbour buffer, item side info.

Users and items share one node index space (assigned as the recommender's id maps grow), so the buffer,
the sampler and the embedding store need not know node kinds. Everything here is a function of the events
and item metadata folded in so far, which is what makes an incremental refresh equal a full recompute.

Besides the K-slot buffer the graph keeps every (user, item) pair that has an edge (`seen`, one sorted int64
key per pair, as the graph store's edges minus type and time; held log-structured in `pairs`, a KeyLog of
model_server/pairs.py, so that folding a batch in costs the batch, not a rewrite of every pair): the score uses it to tell items a user already
interacted with but that fell out of the user's K recent slots (rewatches are rare on MovieLens, repeats
dominate Wikipedia; the model learns which), and `degree`, each node's number of distinct neighbours (the
all-time popularity of an item). Both are rebuilt from the graph store's edges like the buffer.

Beside each seen pair the graph keeps its newest event time (`seen_ts`, the max over types of the graph store's
last_ts), and per item a time-decayed count of its distinct users for a few half-lives h (registered by training,
`ensure_half_lives`): R_h(i, T) = sum over pairs (u, i) of 2^(-(T - last_ts(u, i)) / h), T the graph's newest
event time: an item's recent global popularity, the quantity that the windowed popularity of Cornell et al. (2025,
arXiv 2502.04910) and the decayed counts of Ji et al. (SIGIR 2020) rank by, but over distinct users as `degree`.
It is kept incrementally in float64 as S_h[i] = sum 2^((last_ts - t_ref) / h) (a new pair adds its term; a pair
whose newest time moved adds the difference of its two terms; re-observing an event changes nothing) and read
as R = S * 2^(-(T - t_ref) / h); t_ref moves forward (S rescaled) before an exponent would grow past
_MAX_EXPONENT. Like `degree` it is a function of the pairs' newest times, so a rebuild from the graph store's
edges gives the same counts (up to float64 rounding of the sums' order).
"""

from __future__ import annotations

import torch

from streamrec.schema import EVENT_TYPES

from ..pairs import LOW, SHIFT, KeyLog
from .catalogue_rows import CatalogueRows
from .features import ITEM, USER, ItemSideInfo
from .neighbours import RecentNeighbours, tie_keys

_MAX_EXPONENT = 256.0  # 2^256 per pair leaves float64 ~10^230 of headroom for the sums
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
        self.pairs = KeyLog(device)  # (user node << SHIFT | item node) keys -> newest event time of the pair
        self.degree = torch.zeros(0, dtype=torch.long, device=device)  # distinct neighbours per node (all time)
        self.half_lives = torch.zeros(0, dtype=torch.long, device=device)  # ms, sorted, of the decayed counts
        self.decayed = torch.zeros(0, 0, dtype=torch.float64, device=device)  # [half-lives, nodes] S_h (items)
        self.t_ref: int | None = None  # the reference time of `decayed` (None: no pair yet)
        self.catalogue = CatalogueRows(k, device)  # told of every change below
        self._newest: torch.Tensor | None = None  # newest_time(), kept by insert (None: scan the buffer again)
        self._storage: dict[str, torch.Tensor] = {}  # the per-node columns' storage, with room to grow (_append)

    @property
    def seen(self) -> torch.Tensor:
        """Sorted unique (user node << SHIFT | item node) keys of every pair with an edge (compacts `pairs`)."""
        return self.pairs.keys

    @property
    def seen_ts(self) -> torch.Tensor:
        """The newest event time of each pair of `seen`, aligned with it."""
        return self.pairs.values

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
        new_users, new_items = user_ids[self.num_users :], item_ids[self.num_items :]
        if not new_users and not new_items:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        device = self.device
        n_u, n_i = len(new_users), len(new_items)
        nodes_u = torch.arange(start, start + n_u, device=device)
        nodes_i = torch.arange(start + n_u, start + n_u + n_i, device=device)
        self._append(
            "node_kind", torch.cat([torch.full((n_u,), USER, device=device), torch.full((n_i,), ITEM, device=device)])
        )
        self._append(
            "node_local",
            torch.cat(
                [
                    torch.arange(self.num_users, self.num_users + n_u, device=device),
                    torch.arange(self.num_items, self.num_items + n_i, device=device),
                ]
            ),
        )
        self._append("user_node", nodes_u)
        self._append("item_node", nodes_i)
        self.buffer.add_nodes(tie_keys(new_users + new_items))
        self._append("degree", torch.zeros(n_u + n_i, dtype=torch.long, device=device))
        self._append("decayed", self.decayed.new_zeros(self.decayed.shape[0], n_u + n_i), dim=1)
        self.side.ensure(self.num_items)
        return torch.cat([nodes_u, nodes_i])

    def _append(self, name: str, values: torch.Tensor, dim: int = 0) -> None:
        """The per-node column `name` with `values` appended along `dim`, in storage that grows by doubling: a batch
        that brings a new node used to copy every column whole (O(nodes) per batch). The column stays a view of
        the filled part; a column replaced by a tensor of its own (a load, a recount) gets new storage when it
        next grows."""
        column, storage = getattr(self, name), self._storage.get(name)
        n, extra = column.shape[dim], values.shape[dim]
        if storage is None or storage.data_ptr() != column.data_ptr() or storage.shape[dim] < n + extra:
            shape = list(column.shape)
            shape[dim] = max(2 * n, n + extra, 64)
            storage = self._storage[name] = column.new_zeros(shape)
            storage.narrow(dim, 0, n).copy_(column)
        storage.narrow(dim, n, extra).copy_(values)
        setattr(self, name, storage.narrow(dim, 0, n + extra))

    def clear(self) -> None:
        """Forget every edge (nodes and item side info stay)."""
        self.buffer.clear()
        self.pairs.clear()
        self.degree.zero_()
        self.decayed.zero_()
        self.t_ref = None
        self.catalogue.reset()
        self._newest = None

    def newest_time(self) -> torch.Tensor:
        """The newest event time folded in (0 when empty): every event sits in slot 0 of its endpoints' rows
        when inserted and only newer edges displace it, so this is the max of slot 0 — graph state only. Kept
        as events are inserted (a scan of every row per ranking grew with the graph)."""
        if self._newest is None:
            n = self.num_nodes
            self._newest = self.buffer.ts[:n, 0].max() if n else torch.zeros((), dtype=torch.long, device=self.device)
        return self._newest

    def seen_pairs(
        self, user_nodes: torch.Tensor, among: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in user_nodes, item node) for every item each user has an edge to (vectorised range reads), by row
        and then item. With `among` (sorted unique item nodes) the caller keeps only those items: where the users'
        ranges are longer than the (row, item among) grid, the grid is looked up instead and only those pairs come
        back, in the same order. A user's range grows with the user's history and repeats for each of the user's
        events in a batch, so the read then follows the batch and its candidates, not how much a heavy user did
        before (issue 31). Otherwise the ranges come back whole, as without `among` (filtering them here would
        only repeat the caller's filter)."""
        if among is not None and user_nodes.numel() * among.numel() < int(self.degree[user_nodes].sum()):
            keys = ((user_nodes[:, None] << SHIFT) | among[None, :]).reshape(-1)
            found, _ = self.pairs.find(keys)
            rows = torch.arange(user_nodes.numel(), device=keys.device).repeat_interleave(among.numel())
            return rows[found], keys[found] & LOW
        rows, keys, _ = self.pairs.ranges_of(user_nodes)
        return rows, keys & LOW

    def insert(self, users: torch.Tensor, items: torch.Tensor, types: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """Fold interactions (user index, item index, type index, epoch ms) into both endpoints' rows."""
        u = self.user_node[users.to(self.device)]
        i = self.item_node[items.to(self.device)]
        types, ts = types.to(self.device), ts.to(self.device)
        self._fold_pairs((u << SHIFT) | i, ts)
        self.catalogue.changed(i)  # the items' rows and degrees (users' are not read catalogue-wide)
        if self._newest is not None and ts.numel():
            self._newest = torch.maximum(self._newest, ts.max().clamp(min=0))
        return self.buffer.insert(torch.cat([u, i]), torch.cat([i, u]), torch.cat([types, types]), torch.cat([ts, ts]))

    def _fold_pairs(self, pair_keys: torch.Tensor, ts: torch.Tensor) -> None:
        """Fold (user node << SHIFT | item node) keys with their event times into `seen`, `seen_ts`, `degree`
        and the decayed counts: per pair only its newest time counts, so folding an event twice changes nothing."""
        if pair_keys.numel() == 0:
            return
        keys, inverse = torch.unique(pair_keys, return_inverse=True)
        newest = torch.zeros(keys.numel(), dtype=torch.long, device=self.device)
        newest = newest.scatter_reduce(0, inverse, ts.to(torch.long), reduce="amax", include_self=False)
        self._move_reference(int(newest.max()))
        found, known_ts = self.pairs.find(keys)
        # pairs already seen whose newest time moved: swap their old term for the new one
        moved = found & (newest > known_ts)
        if bool(moved.any()):
            at, old_ts, new_ts = keys[moved], known_ts[moved], newest[moved]
            self.pairs.set_values(at, new_ts)
            items = at & LOW
            self._add_decayed(items, new_ts, 1.0)
            self._add_decayed(items, old_ts, -1.0)
        fresh, fresh_ts = keys[~found], newest[~found]
        if fresh.numel():
            self._count_pairs(fresh)
            self._add_decayed(fresh & LOW, fresh_ts, 1.0)
            self.pairs.add(fresh, fresh_ts)

    def forget_before(self, cutoff: int) -> torch.Tensor:
        """Forgets every edge whose time is before `cutoff` (the retention rule): from the buffer rows (an edge
        displaced from a row earlier is older still), and every pair whose newest time is before it, with its
        degrees and decayed terms. What is left is what folding only the kept edges gives. Returns the nodes
        whose rows changed."""
        rows = self.buffer.forget_before(cutoff)
        self.catalogue.changed(rows)
        keys, ts = self.pairs.keys, self.pairs.values
        expired = ts < cutoff
        if bool(expired.any()):
            gone = keys[expired]
            self.pairs.replace(keys[~expired], ts[~expired])
            ends = torch.cat([gone >> SHIFT, gone & LOW])
            self.degree -= torch.bincount(ends, minlength=self.num_nodes)[: self.num_nodes]
            self.catalogue.changed(gone & LOW)
            self.recompute_decayed()
        return rows

    # -- time-decayed distinct users per item ----------------------------------------------------------------
    def ensure_half_lives(self, half_lives) -> None:
        """Keep decayed counts for these half-lives (ms; <= 0 means all-time and is skipped) as well; the counts
        of a newly registered half-life are computed from the pairs' newest times."""
        wanted = torch.tensor([int(h) for h in half_lives if int(h) > 0], dtype=torch.long, device=self.device)
        merged = torch.unique(torch.cat([self.half_lives, wanted]))
        if torch.equal(merged, self.half_lives):
            return
        self.half_lives = merged
        self.recompute_decayed()

    def recompute_decayed(self) -> None:
        """The decayed counts from scratch, from `seen` and `seen_ts` (reference time: the newest pair time)."""
        self.decayed = torch.zeros(self.half_lives.numel(), self.num_nodes, dtype=torch.float64, device=self.device)
        seen, seen_ts = self.seen, self.seen_ts
        self.t_ref = int(seen_ts.max()) if seen_ts.numel() else None
        if seen.numel():
            self._add_decayed(seen & LOW, seen_ts, 1.0)

    def _weights(self, ts: torch.Tensor) -> torch.Tensor:
        """[half-lives, len(ts)] 2^((ts - t_ref) / h) in float64."""
        exponent = (ts.to(torch.float64) - float(self.t_ref))[None, :] / self.half_lives.to(torch.float64)[:, None]
        return torch.exp2(exponent)

    def _add_decayed(self, item_nodes: torch.Tensor, ts: torch.Tensor, sign: float) -> None:
        if self.half_lives.numel() == 0 or item_nodes.numel() == 0:
            return
        self.decayed.index_add_(1, item_nodes, self._weights(ts), alpha=sign)

    def _move_reference(self, newest: int) -> None:
        """Before folding times up to `newest`: set t_ref if unset, or move it to `newest` (rescaling S) when the
        exponent (newest - t_ref) / h would pass _MAX_EXPONENT for the shortest half-life."""
        if self.t_ref is None:
            self.t_ref = newest
            return
        if self.half_lives.numel() == 0:
            return
        if (newest - self.t_ref) / float(self.half_lives.min()) > _MAX_EXPONENT:
            shift = float(self.t_ref - newest) / self.half_lives.to(torch.float64)
            self.decayed *= torch.exp2(shift)[:, None]
            self.t_ref = newest

    def recent_popularity(self, item_nodes: torch.Tensor, half_life: int) -> torch.Tensor:
        """[len(item_nodes)] float64 R_h(i, T): the item's distinct users, each weighted 2^(-age / h) by the
        age of the pair's newest event, measured from the graph's newest event T (graph state only)."""
        if half_life not in self.half_lives.tolist():
            self.ensure_half_lives([half_life])
        if self.t_ref is None:
            return torch.zeros(item_nodes.numel(), dtype=torch.float64, device=self.device)
        row = int(torch.searchsorted(self.half_lives, torch.tensor(half_life, device=self.device)))
        scale = 2.0 ** (-(int(self.newest_time()) - self.t_ref) / float(half_life))
        return (self.decayed[row, item_nodes] * scale).clamp(min=0.0)

    def state_dict(self) -> dict:
        return {
            "node_kind": self.node_kind.cpu(),
            "node_local": self.node_local.cpu(),
            "buffer": self.buffer.state_dict(),
            "seen": self.seen.cpu(),
            "seen_ts": self.seen_ts.cpu(),
            "side": self.side.state_dict(self.num_items),
        }

    def load_state_dict(self, state: dict) -> None:
        kind, local = state["node_kind"].to(self.device), state["node_local"].to(self.device)
        self.node_kind, self.node_local = kind, local
        self.user_node = torch.nonzero(kind == USER).squeeze(1)[torch.argsort(local[kind == USER])]
        self.item_node = torch.nonzero(kind == ITEM).squeeze(1)[torch.argsort(local[kind == ITEM])]
        self.buffer.load_state_dict(state["buffer"])
        seen = state.get("seen", torch.zeros(0, dtype=torch.long)).to(self.device)
        seen_ts = state.get("seen_ts")  # None in checkpoints written before the decayed counts existed
        self.set_seen(seen, None if seen_ts is None else seen_ts.to(self.device))
        self.side.load_state_dict(state["side"])
        self.side.ensure(self.num_items)
        self.catalogue.reset()
        self._newest = None

    def set_seen(self, keys: torch.Tensor, ts: torch.Tensor | None = None) -> None:
        """Replace the (user, item) pair set and the pairs' newest times (aligned with `keys`; None: unknown, as
        in checkpoints written before they were kept: 0, so the pairs weigh nothing in the decayed counts) and
        recount the degrees and the decayed counts from them."""
        keys = keys.to(torch.long)
        ts = torch.zeros_like(keys) if ts is None or ts.numel() != keys.numel() else ts.to(torch.long)
        self.pairs.replace(keys[:0], ts[:0])
        self.degree = torch.zeros(self.num_nodes, dtype=torch.long, device=self.device)
        self.decayed = torch.zeros(self.half_lives.numel(), self.num_nodes, dtype=torch.float64, device=self.device)
        self.t_ref = None
        self.catalogue.reset()
        if keys.numel():
            unique, inverse = torch.unique(keys, return_inverse=True)
            newest = torch.zeros(unique.numel(), dtype=torch.long, device=self.device)
            self.pairs.replace(unique, newest.scatter_reduce(0, inverse, ts, reduce="amax", include_self=False))
            self._count_pairs(unique)
            self.recompute_decayed()

    def _count_pairs(self, keys: torch.Tensor) -> None:
        """Adds one to the degree of both nodes of every (new) pair key."""
        ones = torch.ones(keys.numel(), dtype=torch.long, device=self.device)
        self.degree.index_add_(0, keys >> SHIFT, ones)
        self.degree.index_add_(0, keys & LOW, ones)
