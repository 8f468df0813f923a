"""A synthetic interaction graph for scale runs beyond the real sets' size (`streamrec load`, docs/scaling.md).

The real sets here hold at most 157k edges; an operator's graph after a month holds tens of millions. This
graph is synthetic (the docs say so wherever it is used) but shaped like the real ones:
- heavy-tailed degrees: a user's (an item's) share of the events falls as a power of its activity rank,
  P(rank r) proportional to (r + 1)^-exponent, the Zipf-like popularity of e-commerce and editing logs (Clauset,
  Shalizi and Newman, "Power-law distributions in empirical data", SIAM Review 2009, for such fits);
- event times spread over `days` with a daily cycle (activity peaks in the evening, as in the REES46 clicks);
- event types in e-commerce proportions (mostly views, few purchases).
Events become edges as the graph of record keeps them: one edge per (user, item, type), with its event count
and its first and last event time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schema import EVENT_TYPES

DAY_MS = 86_400_000
TYPE_SHARES = {"view": 0.90, "add_to_cart": 0.07, "purchase": 0.03}


@dataclass(frozen=True)
class SyntheticEdges:
    """Column arrays, one entry per edge, in the order of each edge's first event."""

    users: np.ndarray  # int64 user rank (0: the most active)
    items: np.ndarray  # int64 item rank (0: the most popular)
    types: np.ndarray  # int64 index into schema.EVENT_TYPES
    count: np.ndarray  # int64 events on the edge
    first_ts: np.ndarray  # int64 epoch ms
    last_ts: np.ndarray  # int64 epoch ms

    def __len__(self) -> int:
        return int(self.users.size)


DEFAULT_PREFIX = "synthetic-"


def user_id(rank: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}user-{rank}"


def item_id(rank: int, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}item-{rank}"


def synthetic_edges(
    n_edges: int,
    *,
    users: int,
    items: int,
    seed: int = 0,
    end_ms: int = 1_700_000_000_000,
    days: float = 30.0,
    user_exponent: float = 0.8,
    item_exponent: float = 1.0,
) -> SyntheticEdges:
    """`n_edges` distinct (user, item, type) edges, drawn as events until that many distinct edges exist."""
    if n_edges < 0 or users < 1 or items < 1:
        raise ValueError("give n_edges >= 0, users >= 1 and items >= 1")
    if n_edges > users * items * len(TYPE_SHARES):
        raise ValueError(f"{users} users and {items} items cannot make {n_edges} distinct edges")
    rng = np.random.default_rng(seed)
    user_cdf, item_cdf = _rank_cdf(users, user_exponent), _rank_cdf(items, item_exponent)
    type_index = np.array([EVENT_TYPES.index(name) for name in TYPE_SHARES])
    type_cdf = np.cumsum(list(TYPE_SHARES.values()))
    keys = np.zeros(0, dtype=np.int64)
    draws = max(n_edges, 1)
    while True:
        u = np.searchsorted(user_cdf, rng.random(draws)).clip(max=users - 1)
        i = np.searchsorted(item_cdf, rng.random(draws)).clip(max=items - 1)
        t = type_index[np.searchsorted(type_cdf, rng.random(draws)).clip(max=len(type_index) - 1)]
        keys = np.concatenate([keys, (u * items + i) * len(EVENT_TYPES) + t])
        if np.unique(keys).size >= n_edges:
            break
        draws = max(draws // 2, 1024)  # the heavy tail repeats pairs: more events than edges are needed
    ts = np.sort(_event_times(rng, keys.size, end_ms, days))
    return _edges_of_events(keys, ts, n_edges, items)


def _rank_cdf(n: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _event_times(rng: np.random.Generator, n: int, end_ms: int, days: float) -> np.ndarray:
    """Times over `days` ending at end_ms, with a daily cycle (twice the rate at the evening peak as at night)."""
    day = rng.integers(0, max(int(days), 1), n)
    # the hour within a day by rejection from a raised cosine peaking at 20:00
    hours = np.empty(0)
    while hours.size < n:
        candidates = rng.uniform(0, 24, 2 * n)
        keep = rng.uniform(0, 2, candidates.size) < 1 + np.cos((candidates - 20) / 24 * 2 * np.pi)
        hours = np.concatenate([hours, candidates[keep]])
    start = end_ms - int(days * DAY_MS)
    return start + day * DAY_MS + (hours[:n] * 3_600_000).astype(np.int64)


def _edges_of_events(keys: np.ndarray, ts: np.ndarray, n_edges: int, items: int) -> SyntheticEdges:
    """One edge per key (count, first and last time), the n_edges whose first event came first. `ts` is sorted
    and assigned to the events in draw order, so an edge's events are in time order within its group."""
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_ts = keys[order], ts[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], sorted_keys.size] - 1
    first_event = order[starts]  # position in draw (= time) order of each edge's first event
    chosen = np.argsort(first_event, kind="stable")[:n_edges]
    key = sorted_keys[starts][chosen]
    kinds = len(EVENT_TYPES)
    return SyntheticEdges(
        users=key // kinds // items,
        items=key // kinds % items,
        types=key % kinds,
        count=(ends - starts + 1)[chosen],
        first_ts=sorted_ts[starts][chosen],
        last_ts=sorted_ts[ends][chosen],
    )
