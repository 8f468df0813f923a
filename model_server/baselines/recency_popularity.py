"""The training-free recency and popularity heuristics of Cornell, Smirnov, Zarzar Gandler & Cao, "On the Power
of Heuristics in Temporal Graphs" (2025, arXiv 2502.04910), for a user u and a candidate item v at time t:

- local recency      LR(u, v) = the newest time of an event (u, v) before t (-1: none);
- local popularity   LP(u, v) = the number of events (u, v) before t;
- global recency     GR(v)    = the newest time of any event on v before t;
- global popularity  GP(v)    = the number of events on v before t, here optionally only those within the
  last `window_s` seconds ("recently popular");

and their combination, where a second heuristic breaks the ties of the first (a lexicographic order: a user's
own items by LR, then every other item by GP, ...). Which combination and which window are chosen per data set
by streaming MRR on the validation part (`fit(train, validation)`), among VARIANTS.

Scores only need to order items, so each signal is replaced by its dense rank (equal values, equal rank) and
the pair is packed as primary_rank * levels + secondary_rank: exact in float32 (which the harness ranks in)
while a user's distinct primary values times the catalogue stay below 2^24.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender
from .popularity import HALF_LIFE_FRACTIONS
from .selection import best, streaming_mrr

LOCAL = ("local_recency", "local_popularity")
GLOBAL = ("global_popularity", "global_recency")


@dataclass(frozen=True)
class Variant:
    primary: str | None  # one of LOCAL, or None: the global heuristic alone
    secondary: str | None  # one of GLOBAL, or None: the local heuristic alone (its ties stay ties)
    window_s: float | None = None  # for global_popularity: count only the last window_s seconds (None: all)

    @property
    def label(self) -> str:
        parts = [p for p in (self.primary, self.secondary) if p]
        window = f" (window {self.window_s:.0f} s)" if self.secondary == "global_popularity" and self.window_s else ""
        return " then ".join(parts) + window


DEFAULT_VARIANT = Variant("local_recency", "global_popularity")


def variants(train_span_s: float) -> list[Variant]:
    """Every combination tried on validation: windows are fractions of the training span (as recent_pop's
    half-lives), so one grid serves a 3-hour click stream and a month of edits."""
    windows = [None] + [train_span_s * f for f in HALF_LIFE_FRACTIONS]
    seconds = [Variant(None, "global_popularity", w) for w in windows] + [Variant(None, "global_recency")]
    out = []
    for primary in LOCAL:
        out.append(Variant(primary, None))
        out.extend(Variant(primary, v.secondary, v.window_s) for v in seconds)
    return out + seconds


def dense_rank(values: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(rank of each value among the distinct values, 0 = smallest; how many distinct values)."""
    distinct, inverse = torch.unique(values, return_inverse=True)
    return inverse.to(torch.float64), int(distinct.numel())


class RecencyPopularity(Recommender):
    name = "recency_popularity"

    def __init__(self, variant: Variant | None = None, batch_size: int = 200) -> None:
        super().__init__()
        self.variant = variant
        self.batch_size = batch_size
        self.local: dict[int, dict[int, list[int]]] = {}  # user -> item -> [newest ts, count]
        self.item_last_ts = torch.zeros(0, dtype=torch.float64)
        self.event_items = torch.zeros(0, dtype=torch.long)  # every observed event, for windowed popularity
        self.event_ts = torch.zeros(0, dtype=torch.long)
        self.clock_ms: int | None = None
        self.validation_mrr: dict = {}

    # -- fit: choose the variant on validation ---------------------------------------------------------
    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        self.observe(history)
        if self.variant is not None:
            return
        if validation is None or not len(validation):
            self.variant = DEFAULT_VARIANT
            return
        span_s = max((history.ts[-1] - history.ts[0]) / 1000.0, 1.0) if len(history) else 1.0
        candidates = variants(span_s)
        # every variant reads the same state, so one pass scores them all and leaves the validation observed
        mrr = streaming_mrr(
            validation, self.batch_size, self.items, lambda users: self._variant_scores(users, candidates), self.observe
        )
        self.variant = best(mrr, candidates)
        self.observes_validation_in_fit = True
        self.validation_mrr = {
            "variant": self.variant.label,
            "mrr": mrr[self.variant],
            "all": {v.label: m for v, m in mrr.items()},
        }

    @property
    def params(self) -> dict:
        """What `streamrec eval` records in report.json: the variant in use and its validation MRR."""
        variant = self.variant or DEFAULT_VARIANT
        return {
            "variant": variant.label,
            "primary": variant.primary,
            "secondary": variant.secondary,
            "window_s": variant.window_s,
            "validation_mrr": self.validation_mrr.get("mrr"),
        }

    # -- state -------------------------------------------------------------------------------------------
    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        for u, i, ts in zip(users.tolist(), items.tolist(), batch.ts):
            entry = self.local.setdefault(u, {}).setdefault(i, [ts, 0])
            entry[0] = max(entry[0], ts)
            entry[1] += 1
        self._grow_items()
        ts = torch.tensor(batch.ts, dtype=torch.long)
        self.item_last_ts.scatter_reduce_(0, items, ts.to(torch.float64), reduce="amax")
        self.event_items = torch.cat([self.event_items, items.long()])
        self.event_ts = torch.cat([self.event_ts, ts])
        latest = int(ts.max())
        self.clock_ms = latest if self.clock_ms is None else max(self.clock_ms, latest)

    def _grow_items(self) -> None:
        missing = len(self.items) - self.item_last_ts.shape[0]
        if missing > 0:  # -1: "never", below every time (the paper's max({-1} ∪ ...))
            self.item_last_ts = torch.cat([self.item_last_ts, torch.full((missing,), -1.0, dtype=torch.float64)])

    # -- signals -----------------------------------------------------------------------------------------
    def _global_signal(self, name: str, window_s: float | None) -> torch.Tensor:
        n_items = len(self.items)
        if name == "global_recency":
            return self.item_last_ts[:n_items]
        events = self.event_items
        if window_s is not None and self.clock_ms is not None:
            events = events[self.event_ts >= self.clock_ms - window_s * 1000.0]
        return torch.bincount(events, minlength=n_items)[:n_items].to(torch.float64)

    def _local_ranks(self, user_index: list[int], name: str) -> torch.Tensor:
        """[rows, n_items] dense rank of LR or LP among the user's own items (1 = lowest), 0 elsewhere."""
        field = 0 if name == "local_recency" else 1
        rows, cols, values = [], [], []
        for row, u in enumerate(user_index):
            for item, entry in self.local.get(u, {}).items():
                rows.append(row)
                cols.append(item)
                values.append(entry[field])
        ranks = torch.zeros(len(user_index), len(self.items), dtype=torch.float64)
        if not rows:
            return ranks
        row_t, value_t = torch.tensor(rows, dtype=torch.long), torch.tensor(values, dtype=torch.long)
        # rank within each row in one go: values shifted by row so rows never mix, then ranked together
        shifted = row_t * (int(value_t.max()) - int(value_t.min()) + 1) + (value_t - int(value_t.min()))
        _, inverse = torch.unique(shifted, return_inverse=True)
        first = torch.full((len(user_index),), int(inverse.max()) + 1, dtype=torch.long)
        first.scatter_reduce_(0, row_t, inverse, reduce="amin")
        ranks[row_t, torch.tensor(cols, dtype=torch.long)] = (inverse - first[row_t] + 1).to(torch.float64)
        return ranks

    def _variant_scores(self, users: Sequence[str], wanted: Sequence[Variant]):
        """(variant, [len(users), n_items] scores) pairs, one at a time; each local and global signal is
        computed once for all of them."""
        self._grow_items()
        user_index = self.users.lookup(users)
        local = {name: self._local_ranks(user_index, name) for name in {v.primary for v in wanted} if name}
        secondary = {}
        for v in wanted:
            if v.secondary and (v.secondary, v.window_s) not in secondary:
                secondary[(v.secondary, v.window_s)] = dense_rank(self._global_signal(v.secondary, v.window_s))
        no_primary = torch.zeros(len(users), len(self.items), dtype=torch.float64)
        for v in wanted:
            ranks, levels = secondary.get((v.secondary, v.window_s), (None, 1))
            primary = local[v.primary] if v.primary else no_primary
            yield v, primary * levels + (ranks.unsqueeze(0) if ranks is not None else 0.0)

    def score(self, users: Sequence[str]) -> torch.Tensor:
        variant = self.variant or DEFAULT_VARIANT
        _, scores = next(self._variant_scores(users, [variant]))
        return scores.float()
