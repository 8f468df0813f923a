"""Popularity baselines: every user gets the same list.

- `Popularity` (`pop`): all-time interaction counts.
- `RecentPopularity` (`recent_pop`): exponentially time-decayed counts. The half-life is chosen on the
  validation part (by streaming MRR over a small grid of fractions of the training span) unless given, so
  one default serves a 3-hour click stream and a 7-month rating log alike.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender
from .selection import best, probes_mrr

HALF_LIFE_FRACTIONS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)  # of the training span
VALIDATION_BATCH = 200  # the harness's default test batch: the half-life is chosen in batches of this size


def _grow(vector: torch.Tensor, size: int) -> torch.Tensor:
    if vector.shape[0] >= size:
        return vector
    return torch.cat([vector, torch.zeros(max(size, 2 * vector.shape[0]) - vector.shape[0], dtype=vector.dtype)])


class Popularity(Recommender):
    name = "pop"

    def __init__(self) -> None:
        super().__init__()
        self.counts = torch.zeros(0, dtype=torch.float64)

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self.counts = _grow(self.counts, len(self.items))
        self.counts.index_add_(0, items, torch.ones(len(items), dtype=torch.float64))

    def score(self, users: Sequence[str]) -> torch.Tensor:
        self.counts = _grow(self.counts, len(self.items))
        return self.counts[: len(self.items)].float().unsqueeze(0).expand(len(users), -1).clone()


class RecentPopularity(Recommender):
    """Decayed counts kept relative to the newest observed event: c_i = sum over events of 2^(-(now - t)/h)."""

    name = "recent_pop"

    def __init__(self, half_life_s: float | None = None) -> None:
        super().__init__()
        self.half_life_s = half_life_s
        self._reset()

    def _reset(self) -> None:
        self.counts = torch.zeros(0, dtype=torch.float64)
        self.clock_ms: int | None = None

    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        if self.half_life_s is None:
            self.half_life_s = self._choose_half_life(history, validation)
        self.observe(history)

    def _choose_half_life(self, history: InteractionBatch, validation: InteractionBatch | None) -> float:
        span_s = max((history.ts[-1] - history.ts[0]) / 1000.0, 1.0) if len(history) else 1.0
        candidates = [span_s * f for f in HALF_LIFE_FRACTIONS]
        if validation is None or not len(validation):
            return candidates[len(candidates) // 2]
        probes = {half_life: RecentPopularity(half_life) for half_life in candidates}
        for probe in probes.values():
            probe.observe(history)
        mrr = probes_mrr(probes, validation, VALIDATION_BATCH)
        chosen = best(mrr, candidates)
        self.validation_mrr = {"half_life_s": chosen, "mrr": mrr.get(chosen, 0.0)}
        return chosen

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self.counts = _grow(self.counts, len(self.items))
        rate = math.log(2) / (self.half_life_s * 1000.0)
        latest = max(batch.ts)
        if self.clock_ms is not None and latest > self.clock_ms:
            self.counts *= math.exp(-(latest - self.clock_ms) * rate)
        self.clock_ms = latest if self.clock_ms is None else max(self.clock_ms, latest)
        age = self.clock_ms - torch.tensor(batch.ts, dtype=torch.float64)
        self.counts.index_add_(0, items, torch.exp(-age * rate))

    def score(self, users: Sequence[str]) -> torch.Tensor:
        self.counts = _grow(self.counts, len(self.items))
        return self.counts[: len(self.items)].float().unsqueeze(0).expand(len(users), -1).clone()
