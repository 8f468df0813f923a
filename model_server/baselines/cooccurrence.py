"""Streaming item co-occurrence with recency: the serving baseline until a temporal GAT checkpoint exists.

Item-to-item collaborative filtering (Linden, Smith & York, "Amazon.com recommendations", 2003) made
incremental: each event (u, i) adds co-occurrence weight between i and the user's most recent items; a
user is scored from their recent items, newest weighted most, plus a repeat signal for the recent items
themselves and a time-decayed popularity prior (also what a brand-new user gets).
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


class ItemCooccurrence(Recommender):
    name = "cooccurrence"

    def __init__(self, window: int = 20, recency_decay: float = 0.8, repeat_weight: float = 0.5,
                 popularity_weight: float = 0.01, popularity_half_life_s: float = 86_400.0):
        super().__init__()
        self.params = dict(window=window, recency_decay=recency_decay, repeat_weight=repeat_weight,
                           popularity_weight=popularity_weight, popularity_half_life_s=popularity_half_life_s)
        self.window = window
        self.recency_decay = recency_decay
        self.repeat_weight = repeat_weight
        self.popularity_weight = popularity_weight
        self.decay_per_ms = math.log(2) / (popularity_half_life_s * 1000.0)
        self.recent: dict[int, deque] = {}  # user -> deque[(item, weight)], newest last
        self.cooc = torch.zeros(0, 0)  # dense item x item; capacity grows by doubling
        self.popularity = torch.zeros(0)
        self.clock_ms: int | None = None

    def version(self) -> str:
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        return f"cooc-{digest[:12]}"

    def _ensure_capacity(self, n_items: int) -> None:
        capacity = self.cooc.shape[0]
        if n_items <= capacity:
            return
        new_capacity = max(n_items, 2 * capacity, 64)
        grown = torch.zeros(new_capacity, new_capacity)
        grown[:capacity, :capacity] = self.cooc
        self.cooc = grown
        popularity = torch.zeros(new_capacity)
        popularity[:capacity] = self.popularity
        self.popularity = popularity

    def observe_items(self, items) -> None:
        super().observe_items(items)
        self._ensure_capacity(len(self.items))

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self._ensure_capacity(len(self.items))
        weights = torch.tensor([TYPE_WEIGHTS[t] for t in batch.types])
        latest = max(batch.ts)
        if self.clock_ms is not None and latest > self.clock_ms:
            self.popularity *= math.exp(-(latest - self.clock_ms) * self.decay_per_ms)
        self.clock_ms = latest if self.clock_ms is None else max(self.clock_ms, latest)
        # weight each event by its age relative to the batch's newest event
        age_factor = torch.exp(-(latest - torch.tensor(batch.ts, dtype=torch.float64)) * self.decay_per_ms).float()
        self.popularity.index_put_((items,), weights * age_factor, accumulate=True)

        rows, cols, pair_weights = [], [], []
        for u, i, w in zip(users.tolist(), items.tolist(), weights.tolist()):
            recent = self.recent.get(u)
            if recent is None:
                recent = self.recent[u] = deque(maxlen=self.window)
            for j, wj in recent:
                if j != i:
                    rows.append(i)
                    cols.append(j)
                    pair_weights.append(min(w, wj))
            recent.append((i, w))
        if rows:
            r, c, v = torch.tensor(rows), torch.tensor(cols), torch.tensor(pair_weights)
            self.cooc.index_put_((r, c), v, accumulate=True)
            self.cooc.index_put_((c, r), v, accumulate=True)

    def _profiles(self, user_index: list[int]) -> torch.Tensor:
        """Sparse [n_users, capacity]: recency-weighted recent items of each user."""
        rows, cols, values = [], [], []
        for row, u in enumerate(user_index):
            recent = self.recent.get(u, ())
            for age, (item, weight) in enumerate(reversed(recent)):
                rows.append(row)
                cols.append(item)
                values.append(weight * self.recency_decay ** age)
        size = (len(user_index), self.cooc.shape[0])
        return torch.sparse_coo_tensor(torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1),
                                       torch.tensor(values, dtype=torch.float32), size,
                                       check_invariants=False).coalesce()

    def score(self, users: Sequence[str]) -> torch.Tensor:
        n_items = len(self.items)
        self._ensure_capacity(n_items)
        profiles = self._profiles(self.users.lookup(users))
        cooc_scores = torch.sparse.mm(profiles, self.cooc)[:, :n_items]
        repeat = profiles.to_dense()[:, :n_items]
        popularity = self.popularity[:n_items]
        scores = _row_normalise(cooc_scores) + self.repeat_weight * _row_normalise(repeat)
        if n_items:
            scores += self.popularity_weight * popularity / popularity.max().clamp(min=1e-12)
        return scores


def _row_normalise(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.max(dim=1, keepdim=True).values.clamp(min=1e-12) if matrix.shape[1] else matrix
