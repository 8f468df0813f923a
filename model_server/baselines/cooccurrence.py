"""Streaming item co-occurrence with recency: the serving baseline until a temporal GAT checkpoint exists.

Item-to-item collaborative filtering (Linden, Smith & York, "Amazon.com recommendations", 2003) made
incremental: items that appear together among a user's most recent items co-occur; a user is scored from their
recent items, newest weighted most, plus a repeat signal for the recent items themselves and a time-decayed
popularity prior (also what a brand-new user gets).

The state is a function of the graph store's edges: the set of (user, item, type) edges, each with its newest
event time (graph_store keeps one edge per (user, item, type) with last_ts), as the temporal GAT's
(model_server/tgat/graph_state.py). So observing an event twice changes nothing, the order in which different
users' events arrive does not matter (a worker that follows every partition, stream/replica.py, ends in the
state of one worker that read them all, however the partitions interleaved), and a warm start from the graph
store (`rebuild_from_edges`) gives exactly the state streaming gave. Concretely, from the edges:

- per (user, item) pair its newest time (the max over types) and its types (a bit set); the pair's weight is the
  heaviest of its types' TYPE_WEIGHTS;
- per user the recent set R(u): the `window` pairs with the newest times (ties by the items' tie keys, a fixed
  64-bit hash of the item id, the same in every process whatever order the items arrived in);
- the item x item weights C[i, j] = sum over users with i, j in R(u) of min(w(u, i), w(u, j)), kept exactly as
  integers (the type weights are integers): when a batch changes a user's recent set, that user's old
  contributions are subtracted and the new ones added, and integer sums do not depend on their order;
- per item a time-decayed count of its distinct users, each pair weighted 2^-(age / half-life) by the age of
  its newest time (the decayed counts of graph_state.py, after Ji et al., SIGIR 2020): kept in fixed point
  (integers, 2^-FIXED_POINT_BITS units) relative to a reference time on a grid of REFERENCE_HALF_LIVES
  half-lives above the graph's newest event time, so it too is an exact, order-independent sum; the reference
  moves (one pass over the pairs) once an event passes it. Each term is computed by Python's math.exp2, one
  value at a time: a vectorised exp2 may round the last bit differently by position in the tensor.

Ranking ties are broken by item id (the contract's `_ties_by_id`); floating-point score sums are taken in a
canonical order (recent rank by recent rank, no cell twice in one scatter), so two workers holding the same
edges give bit-identical scores.

Memory: per pair 24 bytes (key, newest time, types); the co-occurrence entries are bounded by the recent sets,
at most window x (window - 1) per user (sum over users of |R(u)|^2 - |R(u)|), not items x items. The score
reads, per profile item, its `max_neighbours` heaviest co-occurring items (the "model size" k of Sarwar et al.,
"Item-based collaborative filtering recommendation algorithms", WWW 2001), chosen at read time from the exact
weights (ties by tie key), so the bound on the lists' length is order-independent; it bounds the scoring work,
not memory (the former lists evicted at write time, which made their content depend on the arrival order).
A user's co-occurrences reflect their current recent set: pairs leave C when their items leave it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender
from ..pairs import LOW, SHIFT, ranges_of

TYPE_WEIGHTS = {"click": 1, "view": 1, "add_to_cart": 2, "purchase": 3}  # integers: C sums them exactly
OTHER_TYPE_WEIGHT = 1  # a type outside TYPE_WEIGHTS
_TYPE_BIT = {name: k for k, name in enumerate(TYPE_WEIGHTS)}
_OTHER_BIT = len(TYPE_WEIGHTS)
_N_BITS = len(TYPE_WEIGHTS) + 1
DEFAULT_MAX_NEIGHBOURS = 200
FIXED_POINT_BITS = 36  # popularity terms are at most 2^36 units: 2^27 distinct users per item before int64 overflows
REFERENCE_HALF_LIVES = 8  # the popularity's reference time lies on a grid of this many half-lives
USERS_PER_CHUNK = 1 << 14  # bounds the transient memory of one update (a warm start updates in chunks of users)


def _mask_weights() -> torch.Tensor:
    """Per bit set of types, the heaviest type's weight (0 for the empty set)."""
    bit_weight = [TYPE_WEIGHTS[name] for name in TYPE_WEIGHTS] + [OTHER_TYPE_WEIGHT]
    return torch.tensor(
        [max([w for k, w in enumerate(bit_weight) if mask >> k & 1], default=0) for mask in range(1 << _N_BITS)],
        dtype=torch.long,
    )


MASK_WEIGHT = _mask_weights()


def tie_key(item_id: str) -> int:
    """A fixed signed 64-bit key of an item id (the first 8 bytes of its BLAKE2b digest): orders items that tie on
    time or weight the same way in every process, whatever order the items arrived in."""
    return int.from_bytes(hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


class CooccurrenceWeights:
    """The item x item weights as sorted int64 keys (row << 32 | col) with int64 weights. Updates add integer
    deltas (exact, in any order); an entry whose weight falls to 0 stays as a tombstone, skipped by reads, until
    tombstones are a quarter of the entries and the arrays are compacted."""

    def __init__(self) -> None:
        self.keys = torch.zeros(0, dtype=torch.long)
        self.weight = torch.zeros(0, dtype=torch.long)
        self.tombstones = 0

    def __len__(self) -> int:
        """Entries with a positive weight."""
        return int(self.keys.numel()) - self.tombstones

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.weight.nbytes

    def add(self, keys: torch.Tensor, deltas: torch.Tensor) -> None:
        """Adds `deltas` to the entries `keys` (sorted, unique)."""
        if keys.numel() == 0:
            return
        n = self.keys.numel()
        position = torch.searchsorted(self.keys, keys).clamp(max=max(n - 1, 0))
        found = self.keys[position] == keys if n else torch.zeros(keys.numel(), dtype=torch.bool)
        at = position[found]
        was_zero = int((self.weight[at] == 0).sum())
        self.weight[at] += deltas[found]
        self.tombstones += int((self.weight[at] == 0).sum()) - was_zero
        fresh = ~found
        self.keys, self.weight = _merge_with_values(self.keys, self.weight, keys[fresh], deltas[fresh])
        if self.tombstones * 4 > self.keys.numel():
            keep = self.weight != 0
            self.keys, self.weight, self.tombstones = self.keys[keep], self.weight[keep], 0

    def rows(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(position in `items`, neighbour, weight) of every entry with a positive weight in the rows `items`."""
        at_row, at = ranges_of(self.keys, items)
        weight = self.weight[at]
        live = weight > 0
        return at_row[live], (self.keys[at] & LOW)[live], weight[live]

    def neighbours(self, item: int) -> dict[int, int]:
        """{neighbour: weight} of one item (tests, inspection)."""
        _, cols, weights = self.rows(torch.tensor([item], dtype=torch.long))
        return dict(zip(cols.tolist(), weights.tolist()))


def _merge_with_values(keys: torch.Tensor, values: torch.Tensor, new: torch.Tensor, new_values: torch.Tensor):
    """The sorted union of sorted `keys` and sorted `new` keys not among them, each key's value carried along, in
    linear time."""
    if new.numel() == 0:
        return keys, values
    at = torch.searchsorted(keys, new) + torch.arange(new.numel())
    old = torch.ones(keys.numel() + new.numel(), dtype=torch.bool)
    old[at] = False
    merged_keys = torch.empty(old.numel(), dtype=keys.dtype)
    merged_values = torch.empty(old.numel(), dtype=values.dtype)
    merged_keys[at], merged_values[at] = new, new_values
    merged_keys[old], merged_values[old] = keys, values
    return merged_keys, merged_values


def _rank_within_sorted_groups(groups: torch.Tensor) -> torch.Tensor:
    """0, 1, 2... within each run of equal values of a sorted tensor."""
    first = torch.searchsorted(groups, groups, right=False)
    return torch.arange(len(groups)) - first


def _ordered(groups: torch.Tensor, descending: torch.Tensor, ascending: torch.Tensor) -> torch.Tensor:
    """The permutation sorting entries by group, then `descending` (largest first), then `ascending`."""
    order = torch.argsort(ascending, stable=True)
    order = order[torch.argsort(descending[order], descending=True, stable=True)]
    return order[torch.argsort(groups[order], stable=True)]


class ItemCooccurrence(Recommender):
    name = "cooccurrence"
    observe_is_idempotent = True  # a function of the edges with their newest times (see the module's docstring)

    def __init__(
        self,
        window: int = 20,
        recency_decay: float = 0.8,
        repeat_weight: float = 0.5,
        popularity_weight: float = 0.01,
        popularity_half_life_s: float = 86_400.0,
        max_neighbours: int = DEFAULT_MAX_NEIGHBOURS,
    ):
        super().__init__()
        if window < 1 or max_neighbours < 1 or popularity_half_life_s <= 0:
            raise ValueError("window and max_neighbours must be at least 1, popularity_half_life_s positive")
        self.params = dict(
            window=window,
            recency_decay=recency_decay,
            repeat_weight=repeat_weight,
            popularity_weight=popularity_weight,
            popularity_half_life_s=popularity_half_life_s,
            max_neighbours=max_neighbours,
            state="edges",  # the state is a function of the graph's edges (the recent sets of distinct items)
        )
        self.window = window
        self.recency_decay = recency_decay
        self.repeat_weight = repeat_weight
        self.popularity_weight = popularity_weight
        self.max_neighbours = max_neighbours
        self.half_life_ms = popularity_half_life_s * 1000.0
        self.item_tie = torch.zeros(0, dtype=torch.long)  # per item index: tie_key of its id
        # the (user, item) pairs: sorted keys user << 32 | item, each pair's newest time and its types' bits
        self.pair_keys = torch.zeros(0, dtype=torch.long)
        self.pair_ts = torch.zeros(0, dtype=torch.long)
        self.pair_types = torch.zeros(0, dtype=torch.long)
        self.cooc = CooccurrenceWeights()
        self.popularity = torch.zeros(0, dtype=torch.long)  # per item: sum of 2^((ts - reference) / h), fixed point
        self.reference_ms: float | None = None
        self._popularity_row: torch.Tensor | None = None  # the normalised prior, until the next change

    def version(self) -> str:
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        return f"cooc-{digest[:12]}"

    @property
    def tensor_bytes(self) -> int:
        """Bytes held in the model's tensors (pairs, co-occurrence weights, popularity, tie keys)."""
        return (
            self.pair_keys.nbytes
            + self.pair_ts.nbytes
            + self.pair_types.nbytes
            + self.cooc.nbytes
            + self.popularity.nbytes
            + self.item_tie.nbytes
        )

    # -- state -----------------------------------------------------------------------------------------------
    def _ensure_items(self, n_items: int) -> None:
        known = self.item_tie.shape[0]
        if n_items > known:
            ids = self.items.ids[known:n_items]
            self.item_tie = torch.cat([self.item_tie, torch.tensor([tie_key(i) for i in ids], dtype=torch.long)])
            self.popularity = torch.cat([self.popularity, torch.zeros(n_items - known, dtype=torch.long)])
            self._popularity_row = None

    def observe_items(self, items) -> None:
        super().observe_items(items)
        self._ensure_items(len(self.items))

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self._ensure_items(len(self.items))
        keys = (users.long() << SHIFT) | items.long()
        ts = torch.tensor(batch.ts, dtype=torch.long)
        bits = torch.tensor([1 << _TYPE_BIT.get(t, _OTHER_BIT) for t in batch.types], dtype=torch.long)
        keys, inverse = torch.unique(keys, return_inverse=True)  # sorted: each user's pairs are contiguous
        newest = torch.zeros(keys.numel(), dtype=torch.long).scatter_reduce(
            0, inverse, ts, reduce="amax", include_self=False
        )
        types = torch.zeros(keys.numel(), dtype=torch.long)
        for bit in range(_N_BITS):
            present = torch.zeros(keys.numel(), dtype=torch.long).index_add_(0, inverse, bits >> bit & 1)
            types |= (present > 0).long() << bit
        self._move_reference(int(newest.max()))
        previous = (self.pair_keys, self.pair_ts.clone(), self.pair_types.clone())  # (folding writes in place)
        self._fold_pairs(keys, newest, types)
        current = (self.pair_keys, self.pair_ts, self.pair_types)
        touched = torch.unique_consecutive(keys >> SHIFT)
        for start in range(0, touched.numel(), USERS_PER_CHUNK):
            chunk = touched[start : start + USERS_PER_CHUNK]
            self._update_cooccurrence(self._recent(chunk, previous), self._recent(chunk, current))
        self._popularity_row = None

    def _fold_pairs(self, keys: torch.Tensor, ts: torch.Tensor, types: torch.Tensor) -> None:
        """Fold (user, item) pairs (sorted unique keys) with their newest times and types: per pair only the newest
        time and the union of types count, so folding an event twice changes nothing."""
        n = self.pair_keys.numel()
        position = torch.searchsorted(self.pair_keys, keys).clamp(max=max(n - 1, 0))
        found = self.pair_keys[position] == keys if n else torch.zeros(keys.numel(), dtype=torch.bool)
        at = position[found]
        old_ts = self.pair_ts[at]
        new_ts = torch.maximum(old_ts, ts[found])
        moved = new_ts > old_ts
        if bool(moved.any()):
            items = keys[found][moved] & LOW
            self.popularity.index_add_(0, items, self._terms(new_ts[moved]) - self._terms(old_ts[moved]))
        self.pair_ts[at] = new_ts
        self.pair_types[at] |= types[found]
        fresh = ~found
        if bool(fresh.any()):
            self.popularity.index_add_(0, keys[fresh] & LOW, self._terms(ts[fresh]))
            merged_keys, self.pair_ts = _merge_with_values(self.pair_keys, self.pair_ts, keys[fresh], ts[fresh])
            _, self.pair_types = _merge_with_values(self.pair_keys, self.pair_types, keys[fresh], types[fresh])
            self.pair_keys = merged_keys

    def _recent(self, users: torch.Tensor, pairs=None) -> tuple[torch.Tensor, torch.Tensor]:
        """[len(users), window] items (-1 where a user has fewer) and their pair weights: each user's recent set,
        newest first (equal times by tie key), from `pairs` ((keys, newest times, types); the model's by default).
        Unknown users (-1) have none."""
        pair_keys, pair_ts, pair_types = pairs or (self.pair_keys, self.pair_ts, self.pair_types)
        items = torch.full((users.numel(), self.window), -1, dtype=torch.long)
        weights = torch.zeros((users.numel(), self.window), dtype=torch.long)
        known = torch.nonzero(users >= 0).view(-1)
        rows, at = ranges_of(pair_keys, users[known])
        if rows.numel() == 0:
            return items, weights
        pair_items = pair_keys[at] & LOW
        order = _ordered(rows, pair_ts[at], self.item_tie[pair_items])
        rows, at, pair_items = rows[order], at[order], pair_items[order]
        rank = _rank_within_sorted_groups(rows)
        keep = rank < self.window
        rows, rank = known[rows[keep]], rank[keep]
        items[rows, rank] = pair_items[keep]
        weights[rows, rank] = MASK_WEIGHT[pair_types[at[keep]]]
        return items, weights

    def _update_cooccurrence(
        self, before: tuple[torch.Tensor, torch.Tensor], after: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        """Subtracts the pair contributions of the users' former recent sets and adds those of their new ones (only
        for users whose set or weights changed)."""
        changed = ((before[0] != after[0]) | (before[1] != after[1])).any(1)
        if not bool(changed.any()):
            return
        old_keys, old_weights = _contributions(before[0][changed], before[1][changed])
        new_keys, new_weights = _contributions(after[0][changed], after[1][changed])
        keys, inverse = torch.unique(torch.cat([old_keys, new_keys]), return_inverse=True)
        deltas = torch.zeros(keys.numel(), dtype=torch.long).index_add_(
            0, inverse, torch.cat([-old_weights, new_weights])
        )
        nonzero = deltas != 0
        self.cooc.add(keys[nonzero], deltas[nonzero])

    # -- popularity ------------------------------------------------------------------------------------------
    def _move_reference(self, newest: int) -> None:
        """Keeps every popularity term at most 1 (2^FIXED_POINT_BITS units): the reference time is the next point
        of the grid above the newest event; when an event reaches it, it moves on and the sums are recomputed
        from the pairs (a function of the newest time, so the same whatever the path to it)."""
        if self.reference_ms is not None and newest < self.reference_ms:
            return
        grid = REFERENCE_HALF_LIVES * self.half_life_ms
        self.reference_ms = (math.floor(newest / grid) + 1) * grid
        self.popularity = torch.zeros_like(self.popularity)
        if self.pair_keys.numel():
            self.popularity.index_add_(0, self.pair_keys & LOW, self._terms(self.pair_ts))

    def _terms(self, ts: torch.Tensor) -> torch.Tensor:
        """round(2^((ts - reference) / half-life) * 2^FIXED_POINT_BITS) per time, as int64."""
        reference, half_life, scale = self.reference_ms, self.half_life_ms, float(1 << FIXED_POINT_BITS)
        values = {t: round(math.exp2((t - reference) / half_life) * scale) for t in set(ts.tolist())}
        return torch.tensor([values[t] for t in ts.tolist()], dtype=torch.long)

    def _popularity(self, n_items: int) -> torch.Tensor:
        """[n_items] float32 decayed distinct-user counts over their largest (all 0 before any event)."""
        if self._popularity_row is None or self._popularity_row.shape[0] != n_items:
            counts = self.popularity[:n_items].double()
            top = counts.max() if n_items else counts.new_zeros(())
            self._popularity_row = (counts / top).float() if top > 0 else torch.zeros(n_items)
        return self._popularity_row

    # -- scoring ---------------------------------------------------------------------------------------------
    def score(self, users: Sequence[str]) -> torch.Tensor:
        n_items = len(self.items)
        self._ensure_items(n_items)
        scores = torch.zeros(len(users), n_items)
        if not n_items:
            return scores
        items, weights = self._recent(torch.tensor(self.users.lookup(users), dtype=torch.long))
        decay = torch.tensor([self.recency_decay**rank for rank in range(self.window)], dtype=torch.float64)
        values = (weights.double() * decay).float()  # newest weighted most
        self._add_cooccurrence(scores, items, values)
        # the three signals, each scaled to a row maximum of 1, summed in place (the rows are wide)
        scores /= scores.max(dim=1, keepdim=True).values.clamp(min=1e-12)
        self._add_repeat_signal(scores, items, values)
        scores += self.popularity_weight * self._popularity(n_items)
        return scores

    def _add_cooccurrence(self, scores: torch.Tensor, items: torch.Tensor, values: torch.Tensor) -> None:
        """scores[u, j] += values[u, r] * C[items[u, r], j] over each profile item's `max_neighbours` heaviest
        neighbours, one recent rank r at a time: no cell is added to twice in one scatter, so the float sums
        are taken in the same order (by rank) in every process."""
        profile = torch.unique(items[items >= 0])
        if profile.numel() == 0:
            return
        rows, cols, weights = self.cooc.rows(profile)
        order = _ordered(rows, weights, self.item_tie[cols])
        rows, cols, weights = rows[order], cols[order], weights[order]
        keep = _rank_within_sorted_groups(rows) < self.max_neighbours
        rows, cols, weights = rows[keep], cols[keep], weights[keep].float()
        counts = torch.bincount(rows, minlength=profile.numel())
        starts = torch.cumsum(counts, 0) - counts
        width = scores.shape[1]
        for rank in range(self.window):
            users = torch.nonzero(items[:, rank] >= 0).view(-1)
            if users.numel() == 0:
                break  # recent sets fill from rank 0
            listed = torch.searchsorted(profile, items[users, rank])
            n = counts[listed]
            entry_user = torch.repeat_interleave(torch.arange(users.numel()), n)
            offset = torch.arange(entry_user.numel()) - (torch.cumsum(n, 0) - n)[entry_user]
            at = starts[listed][entry_user] + offset
            cells = users[entry_user] * width + cols[at]
            scores.view(-1).index_add_(0, cells, values[users, rank][entry_user] * weights[at])

    def _add_repeat_signal(self, scores: torch.Tensor, items: torch.Tensor, values: torch.Tensor) -> None:
        """Adds repeat_weight x each user's recent items' weights over the row's largest (distinct items: each
        cell once)."""
        present = items >= 0
        row_max = values.masked_fill(~present, 0.0).max(dim=1).values.clamp(min=1e-12)
        users, rank = torch.nonzero(present, as_tuple=True)
        cells = users * scores.shape[1] + items[users, rank]
        scores.view(-1).index_add_(0, cells, self.repeat_weight * values[users, rank] / row_max[users])


def _contributions(items: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The co-occurrence entries of recent sets ([users, window] items, -1 padded, and their pair weights): every
    ordered pair of distinct items of one set, at the lighter of the two weights, as (row << 32 | col) keys."""
    if items.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    a, b = items.unsqueeze(2), items.unsqueeze(1)
    valid = (a >= 0) & (b >= 0) & ~torch.eye(items.shape[1], dtype=torch.bool)
    keys = ((a << SHIFT) | b.clamp(min=0)).expand(valid.shape)[valid]
    pair_weights = torch.minimum(weights.unsqueeze(2), weights.unsqueeze(1))[valid]
    return keys, pair_weights
