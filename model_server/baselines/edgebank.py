"""EdgeBank (Poursafaei et al., "Towards Better Evaluation for Dynamic Link Prediction", NeurIPS 2022; the
memorise-past-edges baseline of TGB): a (user, item) pair scores 1 if it was observed before, else 0.

- unlimited memory (`edgebank`): every pair ever observed;
- time window (`edgebank_window`): only pairs observed within the last `window_s` seconds of the newest
  event. As in TGB, the window defaults to the duration of the held-out period (here: the validation part,
  the last span known before the test).

Unobserved pairs tie at 0, so the rank of a miss is the average over the tied items (metrics.py).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender


class EdgeBank(Recommender):
    name = "edgebank"

    def __init__(self, window_s: float | None = None, time_window: bool = False) -> None:
        super().__init__()
        self.window_s = window_s
        self.time_window = time_window or window_s is not None
        if self.time_window:
            self.name = "edgebank_window"
        self.last_seen: dict[int, dict[int, int]] = {}  # user -> item -> last ts (ms)
        self.clock_ms: int | None = None

    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        if self.time_window and self.window_s is None:
            part = validation if validation is not None and len(validation) else history
            self.window_s = max((part.ts[-1] - part.ts[0]) / 1000.0, 1.0) if len(part) else 1.0
        self.observe(history)

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        for u, i, ts in zip(users.tolist(), items.tolist(), batch.ts):
            memory = self.last_seen.setdefault(u, {})
            if ts >= memory.get(i, ts):
                memory[i] = ts
        latest = max(batch.ts)
        self.clock_ms = latest if self.clock_ms is None else max(self.clock_ms, latest)

    def score(self, users: Sequence[str]) -> torch.Tensor:
        scores = torch.zeros(len(users), len(self.items))
        oldest = None
        if self.time_window and self.clock_ms is not None:
            oldest = self.clock_ms - (self.window_s or 0.0) * 1000.0
        for row, u in enumerate(self.users.lookup(users)):
            memory = self.last_seen.get(u)
            if not memory:
                continue
            kept = [i for i, ts in memory.items() if oldest is None or ts >= oldest]
            if kept:
                scores[row, kept] = 1.0
        return scores
