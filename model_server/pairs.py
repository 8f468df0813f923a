"""Sets of (a, b) index pairs as sorted int64 keys a << 32 | b: 8 bytes a pair (a Python set of ints per
user cost ~120 bytes a pair, measured at 1M edges), merged in linear time, read by ranges of `a` without a
per-row loop.

A set that grows by a micro-batch at a time is kept log-structured (KeyLog): merging each batch into one
sorted array rewrote every key per batch, so a step's cost grew with the history behind it (issue 31).
"""

from __future__ import annotations

import math

import torch

SHIFT = 32
LOW = (1 << SHIFT) - 1


def merge_sorted(keys: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """The sorted union of sorted `keys` and sorted `new` keys not among them, in linear time (a full sort of
    the whole set per micro-batch grew with the graph)."""
    if new.numel() == 0:
        return keys
    at = torch.searchsorted(keys, new) + torch.arange(new.numel(), device=new.device)
    merged = torch.empty(keys.numel() + new.numel(), dtype=keys.dtype, device=keys.device)
    old = torch.ones(merged.numel(), dtype=torch.bool, device=keys.device)
    old[at] = False
    merged[at] = new
    merged[old] = keys
    return merged


def new_keys(keys: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Sorted unique `candidates` that are not in `keys`."""
    candidates = torch.unique(candidates)
    if keys.numel() == 0 or candidates.numel() == 0:
        return candidates
    position = torch.searchsorted(keys, candidates).clamp(max=keys.numel() - 1)
    return candidates[keys[position] != candidates]


def rows_of(keys: torch.Tensor, firsts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(position in `firsts`, b) for every key whose a is one of `firsts`: vectorised range reads."""
    rows, at = ranges_of(keys, firsts)
    return rows, keys[at] & LOW


def ranges_of(keys: torch.Tensor, firsts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(position in `firsts`, position in `keys`) for every key whose a is one of `firsts`."""
    lo = torch.searchsorted(keys, firsts << SHIFT)
    hi = torch.searchsorted(keys, (firsts + 1) << SHIFT)
    counts = hi - lo
    rows = torch.repeat_interleave(torch.arange(firsts.numel(), device=keys.device), counts)
    if rows.numel() == 0:
        return rows, rows
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(rows.numel(), device=keys.device) - starts[rows]
    return rows, lo[rows] + offset


# KeyLog merges `recent` into `main` once it holds sqrt(_RECENT_SCALE * len(main)) keys (and at least _MIN_RECENT)
_MIN_RECENT = 4096
_RECENT_SCALE = 4096


class KeyLog:
    """Sorted unique int64 keys, each with an int64 value, as a log-structured pair of sorted arrays (the layout
    of tgat/sampler_index.py): `main`, and `recent`, the keys added since `main` was last rewritten. An add
    merges only into `recent`; `recent` is merged into `main` once it holds sqrt(_RECENT_SCALE x len(main))
    keys. For a batch of b keys a step then costs O(b log n) to search plus the copy of `recent` plus the
    amortised share of the rewrite of `main`, n / (limit / b): with limit ~ sqrt(n) both are O(sqrt(n) * b)
    at most instead of O(n) (a fixed share of `main` would leave the copy of `recent` O(n)). Reads (find,
    ranges_of) search both arrays and give what one sorted array would, in its order; `keys`
    and `values` compact the two first (the state's own cost, for checkpoints and recounts, not per batch)."""

    def __init__(self, device: torch.device | str = "cpu"):
        empty = torch.zeros(0, dtype=torch.long, device=device)
        self.main, self.main_values = empty, empty
        self.recent, self.recent_values = empty, empty

    def __len__(self) -> int:
        return int(self.main.numel() + self.recent.numel())

    @property
    def keys(self) -> torch.Tensor:
        """Every key, sorted (after merging `recent` into `main`)."""
        self.compact()
        return self.main

    @property
    def values(self) -> torch.Tensor:
        """Every key's value, in key order (after merging `recent` into `main`)."""
        self.compact()
        return self.main_values

    def replace(self, keys: torch.Tensor, values: torch.Tensor | None = None) -> None:
        """Hold exactly sorted unique `keys` with `values` (0 when None)."""
        self.main = keys.to(torch.long)
        self.main_values = torch.zeros_like(self.main) if values is None else values.to(torch.long)
        self.recent, self.recent_values = self.main[:0], self.main_values[:0]

    def clear(self) -> None:
        self.replace(self.main[:0])

    def find(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(found, value) of each of `keys` (value 0 where not found)."""
        in_main, at_main = _find(self.main, keys)
        in_recent, at_recent = _find(self.recent, keys)
        values = torch.zeros_like(keys)
        if self.main.numel():
            values = torch.where(in_main, self.main_values[at_main], values)
        if self.recent.numel():
            values = torch.where(in_recent, self.recent_values[at_recent], values)
        return in_main | in_recent, values

    def set_values(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """The values of `keys`, every one of which is held."""
        in_main, at_main = _find(self.main, keys)
        self.main_values[at_main[in_main]] = values[in_main]
        if not bool(in_main.all()):
            _, at_recent = _find(self.recent, keys[~in_main])
            self.recent_values[at_recent] = values[~in_main]

    def add(self, keys: torch.Tensor, values: torch.Tensor | None = None) -> None:
        """Add sorted unique `keys`, none of them held yet, with `values` (0 when None)."""
        if keys.numel() == 0:
            return
        values = torch.zeros_like(keys) if values is None else values
        self.recent, self.recent_values = merge_with_values(self.recent, self.recent_values, keys, values)
        if self.recent.numel() >= max(_MIN_RECENT, math.isqrt(_RECENT_SCALE * self.main.numel())):
            self.compact()

    def compact(self) -> None:
        """Merge `recent` into `main`."""
        if self.recent.numel():
            self.main, self.main_values = merge_with_values(
                self.main, self.main_values, self.recent, self.recent_values
            )
            self.recent, self.recent_values = self.recent[:0], self.recent_values[:0]

    def ranges_of(self, firsts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(position in `firsts`, key, value) of every key whose a is one of `firsts`, in the order ranges_of over
        one sorted array gives (by position in `firsts`, then by key): the score's terms are summed in this order,
        so training computes what it computed on one array, to the bit."""
        rows, at = ranges_of(self.main, firsts)
        recent_rows, recent_at = ranges_of(self.recent, firsts)
        if recent_rows.numel() == 0:
            return rows, self.main[at], self.main_values[at]
        # the places of `recent`'s few keys in that order: their row's first place, plus the keys of their row
        # before them in `recent` (their offset) and in `main` (a binary search); `main`'s keys fill the other
        # places in their own order. No sort of the result (a heavy user's range is long, and repeats for each
        # of its events in a batch: sorting it doubled the cost of the read).
        low_main, low_recent = (torch.searchsorted(keys, firsts << SHIFT) for keys in (self.main, self.recent))
        high_main, high_recent = (torch.searchsorted(keys, (firsts + 1) << SHIFT) for keys in (self.main, self.recent))
        counts = (high_main - low_main) + (high_recent - low_recent)
        starts = torch.cumsum(counts, 0) - counts
        recent_keys = self.recent[recent_at]
        place = (
            starts[recent_rows]
            + (recent_at - low_recent[recent_rows])
            + (torch.searchsorted(self.main, recent_keys) - low_main[recent_rows])
        )
        from_main = torch.ones(rows.numel() + recent_rows.numel(), dtype=torch.bool, device=firsts.device)
        from_main[place] = False
        out = []
        for main_part, recent_part in (
            (rows, recent_rows),
            (self.main[at], recent_keys),
            (self.main_values[at], self.recent_values[recent_at]),
        ):
            merged = torch.empty(from_main.numel(), dtype=main_part.dtype, device=main_part.device)
            merged[place] = recent_part
            out.append(merged.masked_scatter_(from_main, main_part))  # in order, without listing the places
        return out[0], out[1], out[2]


def merge_with_values(keys: torch.Tensor, values: torch.Tensor, new: torch.Tensor, new_values: torch.Tensor):
    """merge_sorted of sorted `keys` with sorted `new` keys not among them, carrying each key's value along:
    (merged keys, merged values)."""
    if new.numel() == 0:
        return keys, values
    at = torch.searchsorted(keys, new) + torch.arange(new.numel(), device=new.device)
    old = torch.ones(keys.numel() + new.numel(), dtype=torch.bool, device=keys.device)
    old[at] = False
    merged = torch.empty(old.numel(), dtype=keys.dtype, device=keys.device)
    merged_values = torch.empty(old.numel(), dtype=values.dtype, device=values.device)
    merged[at], merged_values[at] = new, new_values
    merged[old], merged_values[old] = keys, values
    return merged, merged_values


def _find(keys: torch.Tensor, wanted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(found, position) of each of `wanted` in sorted `keys`."""
    if keys.numel() == 0:
        return torch.zeros_like(wanted, dtype=torch.bool), torch.zeros_like(wanted)
    at = torch.searchsorted(keys, wanted).clamp(max=keys.numel() - 1)
    return keys[at] == wanted, at


class PairSet:
    """A set of (a, b) pairs, each with the newest time it was added with, log-structured (KeyLog): an add costs
    what its batch costs, not the whole set."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.log = KeyLog(device)

    def __len__(self) -> int:
        return len(self.log)

    @property
    def keys(self) -> torch.Tensor:
        """Every pair's key, sorted."""
        return self.log.keys

    def add(self, firsts: torch.Tensor, seconds: torch.Tensor, ts: torch.Tensor | None = None) -> None:
        """Adds the pairs; a pair's time is the newest it was added with (0 when `ts` is None: unknown)."""
        keys = (firsts.long() << SHIFT) | seconds.long()
        ts = torch.zeros_like(keys) if ts is None else ts.long()
        candidates, inverse = torch.unique(keys, return_inverse=True)
        newest = torch.zeros_like(candidates).scatter_reduce(0, inverse, ts, reduce="amax", include_self=False)
        found, held = self.log.find(candidates)
        moved = found & (newest > held)
        if bool(moved.any()):
            self.log.set_values(candidates[moved], newest[moved])
        self.log.add(candidates[~found], newest[~found])

    def forget_before(self, cutoff: int) -> int:
        """Drops the pairs whose newest time is before `cutoff` (the retention rule); returns how many."""
        keys, ts = self.log.keys, self.log.values
        keep = ts >= cutoff
        dropped = int(keys.numel() - int(keep.sum()))
        if dropped:
            self.log.replace(keys[keep], ts[keep])
        return dropped

    def rows_of(self, firsts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows, keys, _ = self.log.ranges_of(firsts.long())
        return rows, keys & LOW

    def pairs(self) -> torch.Tensor:
        """[n, 2] (a, b) in key order."""
        keys = self.keys
        return torch.stack([keys >> SHIFT, keys & LOW], dim=1)

    def clear(self) -> None:
        self.log.clear()
