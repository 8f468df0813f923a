"""Ranking metrics for one true item per event, ranked against the whole catalogue.

Every figure is computed from two counts per event: `greater` (catalogue items scored strictly above the true
item) and `equal` (other items scored exactly the same). Ties are broken uniformly at random *in expectation*:
the true item is equally likely to sit at any position from 1 + greater to 1 + greater + equal. So

- rank      = 1 + greater + equal / 2   (the mean of the optimistic and pessimistic ranks, TGB's convention)
- MRR       = mean of 1 / rank
- Recall@K  = the share of those positions that are <= K (= Hit@K with one true item); K larger than the
              catalogue simply gives 1 for every ranked event
- NDCG@K    = mean over those positions of 1 / log2(1 + position) if position <= K (the ideal DCG is 1)

An event whose true item is not in the catalogue (a new item) cannot be ranked: it is a miss (`greater = -1`)
and scores 0 on every metric. A constant model (all ties) gets the rank of a random ordering, not 1.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

MISS = -1  # `greater` of an event whose true item is not in the catalogue


def rank_counts(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(greater, equal) per row of `scores` [n, n_items] for the column `targets` [n] (-1 = not rankable)."""
    n = targets.shape[0]
    greater = torch.full((n,), MISS, dtype=torch.long)
    equal = torch.zeros(n, dtype=torch.long)
    ok = targets >= 0
    if n == 0 or scores.shape[-1] == 0 or not bool(ok.any()):
        return greater, equal
    rows = scores[ok]
    true = rows.gather(1, targets[ok].view(-1, 1))
    greater[ok] = (rows > true).sum(dim=1)
    equal[ok] = (rows == true).sum(dim=1) - 1  # the true item itself does not count as a tie
    return greater, equal


def expected_rank(greater: torch.Tensor, equal: torch.Tensor) -> torch.Tensor:
    """1 + greater + equal / 2; +inf for a miss."""
    rank = 1.0 + greater.double() + equal.double() / 2.0
    return torch.where(greater >= 0, rank, torch.full_like(rank, math.inf))


def reciprocal_rank(greater: torch.Tensor, equal: torch.Tensor) -> torch.Tensor:
    return 1.0 / expected_rank(greater, equal)  # 1 / inf = 0 for a miss


def recall_at_k(greater: torch.Tensor, equal: torch.Tensor, k: int) -> torch.Tensor:
    """Per-event expected Hit@K under random tie-breaking (0 for a miss)."""
    g, e = greater.double(), equal.double()
    first, last = g + 1.0, g + 1.0 + e
    inside = (torch.clamp(last, max=k) - first + 1.0).clamp(min=0.0)
    return torch.where(greater >= 0, inside / (e + 1.0), torch.zeros_like(g))


def ndcg_at_k(greater: torch.Tensor, equal: torch.Tensor, k: int) -> torch.Tensor:
    """Per-event expected NDCG@K with one relevant item, under random tie-breaking (0 for a miss)."""
    gains = torch.zeros(k + 1, dtype=torch.float64)
    gains[1:] = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    cumulative = gains.cumsum(0)  # cumulative[m] = sum of gains of positions 1..m
    g, e = greater.clamp(min=0), equal
    upper = cumulative[torch.clamp(g + 1 + e, max=k)]
    lower = cumulative[torch.clamp(g, max=k)]
    value = (upper - lower) / (e.double() + 1.0)
    return torch.where(greater >= 0, value, torch.zeros_like(value))


def summarise(
    greater: torch.Tensor, equal: torch.Tensor, ks: Sequence[int] = (10, 20), ndcg_ks: Sequence[int] = (20,)
) -> dict:
    """Mean metrics over a set of events; every value is None when the set is empty."""
    n = int(greater.shape[0])
    out: dict = {"events": n}
    if n == 0:
        out["mrr"] = None
        out.update({f"recall@{k}": None for k in ks})
        out.update({f"ndcg@{k}": None for k in ndcg_ks})
        out["rankable_share"] = None
        return out
    out["mrr"] = float(reciprocal_rank(greater, equal).mean())
    for k in ks:
        out[f"recall@{k}"] = float(recall_at_k(greater, equal, k).mean())
    for k in ndcg_ks:
        out[f"ndcg@{k}"] = float(ndcg_at_k(greater, equal, k).mean())
    out["rankable_share"] = float((greater >= 0).double().mean())
    return out


def user_hit_rate(users: Sequence, hits: torch.Tensor) -> float | None:
    """Share of distinct users with at least one event counted as a hit (hits: per-event values in [0, 1];
    an event with expected hit h counts as a hit when h >= 0.5, i.e. on the majority of tie orders)."""
    if not len(users):
        return None
    hit_users, all_users = set(), set()
    for user, hit in zip(users, hits.tolist()):
        all_users.add(user)
        if hit >= 0.5:
            hit_users.add(user)
    return len(hit_users) / len(all_users)


def catalogue_coverage(recommended: Iterable[int], catalogue_size: int) -> float | None:
    """Share of the catalogue that appeared in at least one recommended list."""
    if catalogue_size <= 0:
        return None
    return len(set(recommended)) / catalogue_size
