"""Streaming item co-occurrence with recency: the serving baseline until a temporal GAT checkpoint exists.

Item-to-item collaborative filtering (Linden, Smith & York, "Amazon.com recommendations", 2003) made
incremental: each event (u, i) adds co-occurrence weight between i and the user's most recent items; a
user is scored from their recent items, newest weighted most, plus a repeat signal for the recent items
themselves and a time-decayed popularity prior (also what a brand-new user gets).

The item x item weights are kept sparse and bounded: each item keeps only its `max_neighbours` heaviest
co-occurring items (the "model size" k of Sarwar et al., "Item-based collaborative filtering recommendation
algorithms", WWW 2001, who keep the k most similar items per item), in one pool of slots where each item owns
a block that doubles as its list fills (4, 8, ... up to max_neighbours). Memory follows the filled slots (a
few times them, plus 16 bytes per item), never items x max_neighbours nor items x items: a synthetic 1M-item
catalogue with ~8 neighbours per item and a few full lists takes 143 MiB, where the former fixed
[items, max_neighbours] layout took 1.5 GiB and the dense float32 matrix 3.6 TiB. Where no item has more than
`max_neighbours` co-occurring items the scores equal those of the dense matrix exactly; past that, a list keeps
its heaviest entries after each batch (ties to the item seen first), so a newcomer enters a full list only once
its weight within a batch exceeds the list's lightest.

Without decay (the default) co-occurrence weights only grow, so a full list of a popular item keeps neighbours
that stopped co-occurring long ago. With `cooccurrence_half_life_s` every weight halves per half-life: stored
relative to a reference time (w * 2^((t - origin) / half-life)), so all weights decay by one common factor that
is applied at read time, eviction compares stored values as they are, and nothing is swept per event; a
newcomer that keeps co-occurring then displaces a stale neighbour once the stale weight has decayed below the
newcomer's per-batch weight.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender

TYPE_WEIGHTS = {"click": 1.0, "view": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
DEFAULT_MAX_NEIGHBOURS = 200
EVENTS_PER_CHUNK = 1 << 16  # bounds the transient memory of one merge (a large warm start merges in chunks)
NO_NEIGHBOUR = -1
RESCALE_HALF_LIVES = 32  # the decay's reference time moves on once events are this many half-lives past it
MIN_CAPACITY = 4  # a list's first block; it doubles as it fills
POOL_GROWTH = 1.5  # a full pool of slots is packed into one this many times the reserved slots


class NeighbourLists:
    """Per item its heaviest co-occurring items, in one flat pool of slots: item i owns the block
    `start[i] : start[i] + reserved[i]` of `index` (the neighbour, NO_NEIGHBOUR where empty) and `weight`, its
    `length[i]` filled slots first. A block is reserved on the item's first neighbour (MIN_CAPACITY slots) and
    doubles when it fills, up to `max_neighbours`: it moves to the pool's end and its old block is left unused
    until the pool next grows, when every block is packed anew. So memory follows the filled slots (at most
    about 3x them, plus 16 bytes per item), not items x max_neighbours."""

    def __init__(self, max_neighbours: int) -> None:
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be at least 1, got {max_neighbours}")
        self.max_neighbours = max_neighbours
        self.index = torch.full((0,), NO_NEIGHBOUR, dtype=torch.int32)  # the pool of slots
        self.weight = torch.zeros(0)
        self.used = 0  # pool slots handed out to blocks so far (live or left behind)
        self.start = torch.zeros(0, dtype=torch.long)  # per item: its block's first slot
        self.reserved = torch.zeros(0, dtype=torch.int32)  # per item: its block's size
        self.length = torch.zeros(0, dtype=torch.int32)  # per item: its filled slots

    @property
    def capacity(self) -> int:
        """Items (rows) with room for a list."""
        return self.start.shape[0]

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + self.weight.nbytes + self.start.nbytes + self.reserved.nbytes + self.length.nbytes

    @property
    def filled(self) -> int:
        """Filled slots over all lists."""
        return int(self.length.sum())

    def neighbours(self, row: int) -> tuple[list[int], list[float]]:
        """Item `row`'s listed neighbours and their (stored) weights, in slot order."""
        block = (
            slice(int(self.start[row]), int(self.start[row]) + int(self.length[row]))
            if self.capacity > row
            else slice(0, 0)
        )
        return self.index[block].tolist(), self.weight[block].tolist()

    def ensure_rows(self, n_items: int) -> None:
        if n_items > self.capacity:
            rows = max(n_items, 2 * self.capacity, 64)
            self.start = _grown(self.start, rows)
            self.reserved = _grown(self.reserved, rows)
            self.length = _grown(self.length, rows)

    def add(self, rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor) -> None:
        """Adds weight to (row, col) entries (repeats sum). Entries already listed grow in place, new ones take
        their row's next free slots, and a row that would overflow keeps its heaviest `max_neighbours`."""
        rows, cols, weights = self._coalesce(rows, cols, weights)
        slot = self._slots_of(rows, cols)
        listed = slot >= 0
        self.weight.index_add_(0, self.start[rows[listed]] + slot[listed], weights[listed])
        rows, cols, weights = rows[~listed], cols[~listed], weights[~listed]
        slot = self.length[rows].long() + _rank_within_sorted_groups(rows)
        fits = slot < self.max_neighbours
        if bool(fits.any()):
            grown, added = torch.unique_consecutive(rows[fits], return_counts=True)
            self._reserve(grown, self.length[grown].long() + added)
            position = self.start[rows[fits]] + slot[fits]
            self.index[position] = cols[fits].to(torch.int32)
            self.weight[position] = weights[fits]
            self.length.index_add_(0, grown, added.to(torch.int32))
        if not bool(fits.all()):
            self._keep_heaviest(rows[~fits], cols[~fits], weights[~fits])

    def _coalesce(self, rows, cols, weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unique (row, col) entries with their summed weights, sorted by row, then col."""
        keys, inverse = torch.unique(rows * self.capacity + cols, return_inverse=True)
        summed = torch.zeros(len(keys), dtype=weights.dtype).index_add_(0, inverse, weights)
        return keys // self.capacity, keys % self.capacity, summed

    def _filled_slots(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[len(rows), longest list among them] pool positions of the rows' slots and the mask of filled ones
        (positions past a row's list point at its own block or are clamped into the pool, and are masked)."""
        width = int(self.length[rows].max()) if len(rows) else 0
        slots = torch.arange(width)
        filled = slots < self.length[rows].unsqueeze(1)
        position = (self.start[rows].unsqueeze(1) + slots).clamp(max=max(len(self.index) - 1, 0))
        return position, filled

    def _slots_of(self, rows: torch.Tensor, cols: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """The slot listing each (row, col) entry, -1 where the row does not list col; compared in chunks so a
        large warm start never holds a [pairs, width] mask."""
        slots = torch.full((len(rows),), -1, dtype=torch.long)
        if not self.used:
            return slots
        for start in range(0, len(rows), chunk):
            part = slice(start, start + chunk)
            position, filled = self._filled_slots(rows[part])
            match = (self.index[position] == cols[part].to(torch.int32).unsqueeze(1)) & filled
            entry, slot = match.nonzero(as_tuple=True)  # a row lists a col at most once
            slots[start + entry] = slot
        return slots

    def _reserve(self, rows: torch.Tensor, needed: torch.Tensor) -> None:
        """Gives each of `rows` (unique) a block of at least `needed` slots: a block too small is replaced by one
        doubled until it fits (MIN_CAPACITY at first, max_neighbours at most) at the pool's end."""
        short = needed > self.reserved[rows]
        if not bool(short.any()):
            return
        rows, needed = rows[short], needed[short]
        size = torch.full_like(needed, MIN_CAPACITY)
        size = torch.maximum(size, self.reserved[rows].long())
        while bool((size < needed).any()):
            size = torch.where(size < needed, 2 * size, size)
        size = size.clamp(max=self.max_neighbours)
        extra = int(size.sum())
        if self.used + extra > len(self.index):  # the pool is full: pack every block anew, with the new sizes
            self.reserved[rows] = size.to(torch.int32)
            self._repack()
            return
        start = self.used + torch.cumsum(size, 0) - size
        self._move(rows, start)
        self.reserved[rows] = size.to(torch.int32)
        self.used += extra

    def _move(self, rows: torch.Tensor, start: torch.Tensor, index=None, weight=None) -> None:
        """Copies the filled slots of `rows` to blocks beginning at `start` (in `index`/`weight`, the pool by
        default), in chunks of rows, and points the rows there."""
        index = self.index if index is None else index
        weight = self.weight if weight is None else weight
        for begin in range(0, len(rows), 1 << 16):
            part = slice(begin, begin + (1 << 16))
            lengths = self.length[rows[part]].long()
            entry = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
            offset = torch.arange(len(entry)) - (torch.cumsum(lengths, 0) - lengths)[entry]
            source = self.start[rows[part]][entry] + offset
            target = start[part][entry] + offset
            index[target] = self.index[source]
            weight[target] = self.weight[source]
        self.start[rows] = start

    def _repack(self) -> None:
        """A new pool, POOL_GROWTH times the reserved slots, with every block packed in item order (the blocks
        left behind by moves are dropped)."""
        size = self.reserved.long()
        total = int(size.sum())
        pool = max(int(total * POOL_GROWTH), 1024)
        index = torch.full((pool,), NO_NEIGHBOUR, dtype=torch.int32)
        weight = torch.zeros(pool)
        rows = torch.nonzero(size).view(-1)
        self._move(rows, (torch.cumsum(size, 0) - size)[rows], index, weight)
        self.index, self.weight, self.used = index, weight, total

    def _keep_heaviest(self, rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor) -> None:
        """Rewrites the rows of entries that did not fit: their listed and new entries, heaviest first, cut at
        `max_neighbours` (ties go to the smaller item index, the item seen first). Those rows' blocks already
        hold max_neighbours slots (their fitting entries filled them)."""
        full = torch.unique(rows)
        listed_rows, listed_cols, listed_weights = self._entries(full)
        rows, cols, weights = self._coalesce(
            torch.cat([listed_rows, rows]), torch.cat([listed_cols, cols]), torch.cat([listed_weights, weights])
        )
        order = _heaviest_first_within_row(rows, weights)
        rows, cols, weights = rows[order], cols[order], weights[order]
        slot = _rank_within_sorted_groups(rows)
        keep = slot < self.max_neighbours
        position = self.start[rows[keep]] + slot[keep]
        self.index[position] = cols[keep].to(torch.int32)
        self.weight[position] = weights[keep]
        self.length[full] = 0
        self.length.index_add_(0, rows[keep], torch.ones(int(keep.sum()), dtype=torch.int32))

    def _entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row, col, weight) of the filled slots of `rows` (the first length[row] slots)."""
        position, filled = self._filled_slots(rows)
        return (
            rows.unsqueeze(1).expand_as(position)[filled],
            self.index[position][filled].long(),
            self.weight[position][filled],
        )

    def scale(self, factor: float) -> None:
        """Multiplies every weight by `factor` (the decay's rare change of reference time)."""
        self.weight[: self.used] *= factor

    def scatter_into(
        self, scores: torch.Tensor, score_rows: torch.Tensor, items: torch.Tensor, scales: torch.Tensor
    ) -> None:
        """scores[score_rows[e], neighbour] += scales[e] * weight(items[e], neighbour) for every entry e: the
        sparse product of the users' profiles with the item x item weights, without a dense matrix."""
        if not len(items) or not self.used:
            return
        position, filled = self._filled_slots(items)
        index = self.index[position].long()
        flat = score_rows.unsqueeze(1) * scores.shape[1] + index
        scores.view(-1).index_add_(0, flat[filled], (self.weight[position] * scales.unsqueeze(1))[filled])


def _grown(values: torch.Tensor, rows: int) -> torch.Tensor:
    grown = torch.zeros(rows, dtype=values.dtype)
    grown[: len(values)] = values
    return grown


def _heaviest_first_within_row(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Permutation ordering entries by row, then by weight descending; stable, so equal weights keep the
    incoming order (by column index, as torch.unique sorted them)."""
    by_weight = torch.argsort(weights, descending=True, stable=True)
    return by_weight[torch.argsort(rows[by_weight], stable=True)]


def _rank_within_sorted_groups(groups: torch.Tensor) -> torch.Tensor:
    """0, 1, 2... within each run of equal values of a sorted tensor."""
    first = torch.searchsorted(groups, groups, right=False)
    return torch.arange(len(groups)) - first


class ItemCooccurrence(Recommender):
    name = "cooccurrence"

    def __init__(
        self,
        window: int = 20,
        recency_decay: float = 0.8,
        repeat_weight: float = 0.5,
        popularity_weight: float = 0.01,
        popularity_half_life_s: float = 86_400.0,
        max_neighbours: int = DEFAULT_MAX_NEIGHBOURS,
        cooccurrence_half_life_s: float | None = None,
    ):
        super().__init__()
        self.params = dict(
            window=window,
            recency_decay=recency_decay,
            repeat_weight=repeat_weight,
            popularity_weight=popularity_weight,
            popularity_half_life_s=popularity_half_life_s,
            max_neighbours=max_neighbours,
        )
        if cooccurrence_half_life_s is not None:  # absent by default, so the default's version is unchanged
            if cooccurrence_half_life_s <= 0:
                raise ValueError(f"cooccurrence_half_life_s must be positive, got {cooccurrence_half_life_s}")
            self.params["cooccurrence_half_life_s"] = cooccurrence_half_life_s
        self.window = window
        self.recency_decay = recency_decay
        self.repeat_weight = repeat_weight
        self.popularity_weight = popularity_weight
        self.decay_per_ms = math.log(2) / (popularity_half_life_s * 1000.0)
        self.recent: dict[int, deque] = {}  # user -> deque[(item, weight)], newest last
        self.cooc = NeighbourLists(max_neighbours)
        self.popularity = torch.zeros(0)
        self.clock_ms: int | None = None
        # Co-occurrence decay: a weight w added at time t is stored as w * 2^((t - origin) / half-life), so
        # every stored weight is its value at `cooc_origin_ms` and all decay by the same factor: comparisons
        # (eviction) need no timestamps and nothing is swept per event; the origin moves on (one pass over the
        # weights) once events are RESCALE_HALF_LIVES half-lives past it.
        self.cooc_half_life_ms = None if cooccurrence_half_life_s is None else cooccurrence_half_life_s * 1000.0
        self.cooc_origin_ms: float | None = None

    def version(self) -> str:
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        return f"cooc-{digest[:12]}"

    @property
    def tensor_bytes(self) -> int:
        """Bytes held in the model's tensors (the neighbour lists and the popularity prior)."""
        return self.cooc.nbytes + self.popularity.nbytes

    def _ensure_capacity(self, n_items: int) -> None:
        self.cooc.ensure_rows(n_items)
        capacity = self.popularity.shape[0]
        if n_items > capacity:
            popularity = torch.zeros(self.cooc.capacity)
            popularity[:capacity] = self.popularity
            self.popularity = popularity

    def observe_items(self, items) -> None:
        super().observe_items(items)
        self._ensure_capacity(len(self.items))

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self._ensure_capacity(len(self.items))
        weights = torch.tensor([TYPE_WEIGHTS[t] for t in batch.types])
        self._observe_popularity(batch.ts, items, weights)
        growth = self._cooc_growth(batch.ts)
        for start in range(0, len(users), EVENTS_PER_CHUNK):
            part = slice(start, start + EVENTS_PER_CHUNK)
            self._observe_pairs(users[part], items[part], weights[part], None if growth is None else growth[part])

    def _cooc_growth(self, ts: list[int]) -> torch.Tensor | None:
        """Per event, the factor 2^((ts - origin) / half-life) its pairs' weights are stored with; None without
        decay. Moves the origin on first (scaling the stored weights) when the batch is far past it."""
        if self.cooc_half_life_ms is None:
            return None
        latest = max(ts)
        if self.cooc_origin_ms is None:
            self.cooc_origin_ms = float(min(ts))
        half_lives = math.floor((latest - self.cooc_origin_ms) / self.cooc_half_life_ms)
        if half_lives >= RESCALE_HALF_LIVES:
            self.cooc.scale(2.0**-half_lives)  # exact: a power of two
            self.cooc_origin_ms += half_lives * self.cooc_half_life_ms
        age = (torch.tensor(ts, dtype=torch.float64) - self.cooc_origin_ms) / self.cooc_half_life_ms
        return torch.exp2(age).float()

    def _cooc_decay_now(self) -> float:
        """The factor turning stored co-occurrence weights into their values at the clock (1 without decay)."""
        if self.cooc_half_life_ms is None or self.cooc_origin_ms is None or self.clock_ms is None:
            return 1.0
        return 2.0 ** -((self.clock_ms - self.cooc_origin_ms) / self.cooc_half_life_ms)

    def _observe_popularity(self, ts: list[int], items: torch.Tensor, weights: torch.Tensor) -> None:
        latest = max(ts)
        if self.clock_ms is not None and latest > self.clock_ms:
            self.popularity *= math.exp(-(latest - self.clock_ms) * self.decay_per_ms)
        self.clock_ms = latest if self.clock_ms is None else max(self.clock_ms, latest)
        # weight each event by its age relative to the batch's newest event
        age_factor = torch.exp(-(latest - torch.tensor(ts, dtype=torch.float64)) * self.decay_per_ms).float()
        self.popularity.index_put_((items,), weights * age_factor, accumulate=True)

    def _observe_pairs(
        self, users: torch.Tensor, items: torch.Tensor, weights: torch.Tensor, growth: torch.Tensor | None = None
    ) -> None:
        """Pairs each event (u, i, w) with each of u's previous `window` events (j, wj), j != i, at weight
        min(w, wj): the events of earlier batches (kept in `recent`) and the earlier ones of this batch. With
        decay, a pair's weight is stored times its (later) event's `growth`."""
        past_users, past_items, past_weights = self._recent_events(users.unique().tolist())
        n_past = len(past_users)
        order = torch.argsort(torch.cat([past_users, users]), stable=True)  # per user: past first, then in order
        seq_users, seq_items = torch.cat([past_users, users])[order], torch.cat([past_items, items])[order]
        seq_weights = torch.cat([past_weights, weights])[order]
        current = torch.nonzero(order >= n_past).view(1, -1)  # this batch's events in the sequence
        previous = current - torch.arange(1, self.window + 1).view(-1, 1)  # [lag, event]: lag events before
        paired = previous >= 0
        previous = previous.clamp(min=0)
        paired &= (seq_users[previous] == seq_users[current]) & (seq_items[previous] != seq_items[current])
        current, previous = current.expand_as(previous)[paired], previous[paired]
        pair_weights = torch.minimum(seq_weights[current], seq_weights[previous])
        if growth is not None:  # the later event of a pair is the batch's: its growth, in sequence order
            seq_growth = torch.cat([torch.ones(n_past), growth])[order]
            pair_weights = pair_weights * seq_growth[current]
        self._add_pairs(seq_items[current], seq_items[previous], pair_weights)
        self._remember(users.tolist(), items.tolist(), weights.tolist())

    def _recent_events(self, users: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(user, item, weight) of the kept recent events of `users`, oldest first per user."""
        past_users, past_items, past_weights = [], [], []
        for u in users:
            for item, weight in self.recent.get(u, ()):
                past_users.append(u)
                past_items.append(item)
                past_weights.append(weight)
        return (
            torch.tensor(past_users, dtype=torch.long),
            torch.tensor(past_items, dtype=torch.long),
            torch.tensor(past_weights, dtype=torch.float32),
        )

    def _remember(self, users: list[int], items: list[int], weights: list[float]) -> None:
        """Appends events in time order to their users' recent events (each deque keeps the newest `window`)."""
        for u, item, weight in zip(users, items, weights):
            recent = self.recent.get(u)
            if recent is None:
                recent = self.recent[u] = deque(maxlen=self.window)
            recent.append((item, weight))

    def _add_pairs(self, rows: torch.Tensor, cols: torch.Tensor, pair_weights: torch.Tensor) -> None:
        """Co-occurrence is symmetric: each pair adds its weight to both items' lists."""
        if len(rows):
            self.cooc.add(torch.cat([rows, cols]), torch.cat([cols, rows]), torch.cat([pair_weights, pair_weights]))

    def _profiles(self, user_index: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(score row, item, weight) of each user's recent items, newest weighted most."""
        rows, items, values = [], [], []
        for row, u in enumerate(user_index):
            recent = self.recent.get(u, ())
            for age, (item, weight) in enumerate(reversed(recent)):
                rows.append(row)
                items.append(item)
                values.append(weight * self.recency_decay**age)
        return (
            torch.tensor(rows, dtype=torch.long),
            torch.tensor(items, dtype=torch.long),
            torch.tensor(values, dtype=torch.float32),
        )

    def score(self, users: Sequence[str]) -> torch.Tensor:
        n_items = len(self.items)
        self._ensure_capacity(n_items)
        rows, items, values = self._profiles(self.users.lookup(users))
        scores = self._cooccurrence_scores(rows, items, values, (len(users), n_items))
        if n_items:  # the three signals, each scaled to a row maximum of 1, summed in place (the rows are wide)
            scores /= scores.max(dim=1, keepdim=True).values.clamp(min=1e-12)
            self._add_repeat_signal(scores, rows, items, values)
            popularity = self.popularity[:n_items]
            scores += self.popularity_weight * popularity / popularity.max().clamp(min=1e-12)
        return scores

    def _add_repeat_signal(
        self, scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor, values: torch.Tensor
    ) -> None:
        """Adds repeat_weight x each user's recent items' weights (an item seen twice sums), over the row's
        largest, touching only those entries."""
        cells, inverse = torch.unique(rows * scores.shape[1] + items, return_inverse=True)
        summed = torch.zeros(len(cells)).index_add_(0, inverse, values)
        cell_rows = cells // scores.shape[1]
        row_max = torch.zeros(scores.shape[0]).scatter_reduce_(0, cell_rows, summed, reduce="amax")
        scores.view(-1).index_add_(0, cells, self.repeat_weight * summed / row_max[cell_rows])

    def _cooccurrence_scores(
        self, rows: torch.Tensor, items: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
    ) -> torch.Tensor:
        """The users' profiles times the item x item weights, built from the profile items' neighbour lists."""
        scores = torch.zeros(shape)
        decay = self._cooc_decay_now()
        self.cooc.scatter_into(scores, rows, items, values if decay == 1.0 else values * decay)
        return scores
