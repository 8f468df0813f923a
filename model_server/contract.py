"""The one recommender contract used by serving, training, evaluation and every baseline alike.

Modelled on RecBole's split of calculate_loss / predict / full_sort_predict: here `fit` (learn from a
history), `observe` (fold new events into the state, in time order), `score` (full-catalogue scores for a
set of users, using only what was observed). The base class owns the id maps, so every model indexes the
catalogue the same way (items in order of first appearance) and the evaluation harness cannot favour one.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from streamrec.schema import EXCLUDE_POLICIES, Item  # the shared event schema

from . import diversity as _diversity
from .ids import IdMap
from .pairs import PairSet

log = logging.getLogger(__name__)


@dataclass
class InteractionBatch:
    """Columnar events in time order. ts is epoch milliseconds."""

    users: list[str]
    items: list[str]
    types: list[str]
    ts: list[int]

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_events(cls, events: Iterable) -> "InteractionBatch":
        events = list(events)
        return cls(
            [e.user_id for e in events],
            [e.item_id for e in events],
            [e.type for e in events],
            [int(e.ts) for e in events],
        )

    def slice(self, start: int, stop: int) -> "InteractionBatch":
        return InteractionBatch(
            self.users[start:stop], self.items[start:stop], self.types[start:stop], self.ts[start:stop]
        )


def _check_policy(exclude: str) -> None:
    if exclude not in EXCLUDE_POLICIES:
        raise ValueError(f"exclude must be one of {EXCLUDE_POLICIES}, got {exclude!r}")


class _History:
    """What each user has seen and bought (user index, item index pairs), for the exclusion policy of top-K."""

    def __init__(self) -> None:
        self.seen = PairSet()
        self.purchased = PairSet()

    def add(self, users: list[int], items: list[int], types: list[str], ts: Sequence[int] | None = None) -> None:
        """`ts`: the events' times (None: unknown, 0), kept per pair for the retention rule."""
        if not users:
            return
        u, i = torch.tensor(users, dtype=torch.long), torch.tensor(items, dtype=torch.long)
        times = None if ts is None else torch.tensor(list(ts), dtype=torch.long)
        self.seen.add(u, i, times)
        bought = torch.tensor([kind == "purchase" for kind in types], dtype=torch.bool)
        if bool(bought.any()):
            self.purchased.add(u[bought], i[bought], None if times is None else times[bought])

    def forget_before(self, cutoff: int) -> None:
        """A pair stays seen while any of its events is at or after `cutoff`, and bought while a purchase is."""
        self.seen.forget_before(cutoff)
        self.purchased.forget_before(cutoff)

    def excluded(self, users: torch.Tensor, policy: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in `users`, item index) of every excluded pair; unknown users (-1) have none."""
        pairs = {"seen": self.seen, "purchased": self.purchased}.get(policy)
        if pairs is None:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty
        return pairs.rows_of(users)


class _Categories:
    """Each item's category labels (from its item record), as [n, L] label indices padded with -1 for the
    diversity control: kept by id, so a category may arrive before the item's first event."""

    def __init__(self) -> None:
        self.by_item: dict[str, tuple[int, ...]] = {}
        self.names = IdMap()
        self._rows: torch.Tensor | None = None
        self._row_ids: list[str] = []

    def set(self, items: Sequence[Item]) -> None:
        for item, labels in zip(items, _diversity.category_labels([item.category for item in items])):
            if labels:
                self.by_item[item.item_id] = tuple(self.names.add(labels))
            else:
                self.by_item.pop(item.item_id, None)
        if items:
            self._rows = None  # rebuilt on the next use

    def labels(self, item_ids: Sequence[str]) -> torch.Tensor | None:
        """[len(item_ids), L] long; None when no item has a category."""
        if not self.by_item:
            return None
        cached = self._rows
        if (
            cached is not None
            and len(self._row_ids) <= len(item_ids)
            and list(item_ids[: len(self._row_ids)]) == self._row_ids
        ):
            fresh = item_ids[len(self._row_ids) :]
        else:
            cached, self._row_ids, fresh = None, [], item_ids
        rows = [self.by_item.get(i, ()) for i in fresh]
        width = max([len(r) for r in rows] + [cached.shape[1] if cached is not None else 1])
        block = torch.full((len(rows), width), -1, dtype=torch.long)
        for n, labels in enumerate(rows):
            block[n, : len(labels)] = torch.tensor(labels, dtype=torch.long) if labels else block[n, :0]
        if cached is not None:
            if cached.shape[1] < width:
                cached = torch.cat(
                    [cached, torch.full((cached.shape[0], width - cached.shape[1]), -1, dtype=torch.long)], 1
                )
            block = torch.cat([cached, block])
        self._rows, self._row_ids = block, list(item_ids)
        return block


RETENTION_STEPS = 64  # the retention cutoff moves in steps of retention / RETENTION_STEPS (Recommender)


def retention_cutoff(newest_ts: int, retention_ms: int) -> int:
    """The first event time kept when the newest is `newest_ts`: newest - retention, rounded down to a step."""
    step = max(1000, retention_ms // RETENTION_STEPS)
    return ((newest_ts - retention_ms) // step) * step


class Recommender(ABC):
    name: str = "recommender"
    # -- what serving relies on besides the contract; the defaults describe a model with no cache ------------
    device: torch.device = torch.device("cpu")
    # True when observing an event again changes nothing (the state is a set of edges with their newest times):
    # a live worker may then fold in replays and every partition's events (streamrec/runtime/worker.py)
    observe_is_idempotent: bool = False
    # fit() has already observed the validation part (the evaluation harness then does not observe it again)
    observes_validation_in_fit: bool = False
    # serving-time diversity λ in [0, 1] (STREAMREC_DIVERSITY; `streamrec eval --diversity`): MMR re-ranking of
    # each row's top `diversity_depth` items (model_server/diversity.py); 0 = off
    diversity: float = 0.0
    diversity_depth: int = _diversity.DEFAULT_DEPTH
    _diversity_warned: bool = False  # "no effect" is said once per model

    # whether the model can forget edges older than a retention (forget_before; the temporal GAT can)
    supports_retention: bool = False

    def __init__(self) -> None:
        self.users = IdMap()
        self.items = IdMap()
        self.history = _History()
        self.item_categories = _Categories()
        self.retention_ms = 0  # 0: keep every edge (set_retention)
        self.retention_cutoff: int | None = None  # edges before it are forgotten (None: nothing forgotten yet)
        self.newest_event_ts: int | None = None  # the newest event time folded in, while a retention is set

    # -- the contract --------------------------------------------------------------------------
    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        """Learn from a history. Streaming models that learn only by observing just observe it."""
        self.observe(history)

    def observe(self, batch: InteractionBatch) -> None:
        """Fold events (in time order) into the state; ids are registered before the model sees them. With a
        retention, events older than the cutoff are left out and the state forgets what falls behind it."""
        if self.retention_ms and len(batch):
            batch = self._within_retention(batch)
        if not len(batch):
            return
        user_index = self.users.add(batch.users)
        item_index = self.items.add(batch.items)
        self.history.add(user_index, item_index, batch.types, batch.ts)
        self._observe(batch, torch.tensor(user_index), torch.tensor(item_index))

    # -- retention ---------------------------------------------------------------------------------
    def set_retention(self, retention_ms: int) -> None:
        """Keep only edges whose newest event is within `retention_ms` of the newest event folded in (0: all).
        The state is then a function of the retained edges, as a warm start from a graph store pruned by the
        same rule rebuilds it (graph_store's forget_before)."""
        if retention_ms and not self.supports_retention:
            raise ValueError(f"the {self.name} model cannot forget old edges: leave the retention at 0")
        self.retention_ms = int(retention_ms)

    def enforce_retention(self) -> None:
        """Forgets the edges before the cutoff of the newest event time folded in, if the cutoff moved. The
        cutoff moves in steps of 1/RETENTION_STEPS of the retention (at least a second): the forgetting costs
        a pass over the state, and every worker that folded the same events forgets at the same cutoffs."""
        if not self.retention_ms or self.newest_event_ts is None:
            return
        cutoff = retention_cutoff(self.newest_event_ts, self.retention_ms)
        if self.retention_cutoff is None or cutoff > self.retention_cutoff:
            self.retention_cutoff = cutoff
            self.history.forget_before(cutoff)
            self._forget_before(cutoff)

    def _within_retention(self, batch: InteractionBatch) -> InteractionBatch:
        newest = max(batch.ts)
        self.newest_event_ts = newest if self.newest_event_ts is None else max(self.newest_event_ts, newest)
        self.enforce_retention()
        cutoff = self.retention_cutoff
        if cutoff is None or min(batch.ts) >= cutoff:
            return batch
        keep = [k for k, t in enumerate(batch.ts) if t >= cutoff]  # a late event older than what is kept
        return InteractionBatch(
            [batch.users[k] for k in keep],
            [batch.items[k] for k in keep],
            [batch.types[k] for k in keep],
            [batch.ts[k] for k in keep],
        )

    def _forget_before(self, cutoff: int) -> None:
        """The model's own state forgets edges whose newest event is before `cutoff` (history is done)."""
        raise NotImplementedError(f"{self.name} does not support a retention")

    def observe_items(self, items: Sequence[Item]) -> None:
        """New or changed item metadata; registers the items so they can be ranked before any interaction.
        Each item's category is kept (the diversity control falls back to it when a model has no item vectors)."""
        items = list(items)
        self.items.add(item.item_id for item in items)
        self.item_categories.set(items)

    @abstractmethod
    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None: ...

    @abstractmethod
    def score(self, users: Sequence[str]) -> torch.Tensor:
        """[len(users), len(self.items)] scores, higher is better; unknown users get a cold-start row. A new
        tensor the caller owns (top_k writes the exclusions into it), on the model's device: serving ranks it
        there and moves only the top-K to the CPU."""

    def version(self) -> str:
        return "0"

    @property
    def staleness(self) -> int:
        """Nodes whose cached embedding lags the state, until `sweep_stale` reaches them."""
        return 0

    def sweep_stale(self, max_nodes: int | None = None) -> int:
        """Refreshes up to `max_nodes` stale nodes (all when None); returns how many."""
        return 0

    def rebuild_from_edges(
        self, users: Sequence[str], items: Sequence[str], types: Sequence[str], last_ts: Sequence[int]
    ) -> None:
        """Warm start of a new model from the graph store's edges (one per user, item and type, with its newest
        time): begin_rebuild, one page, finish_rebuild."""
        self.begin_rebuild()
        self.rebuild_page(users, items, types, last_ts)
        self.finish_rebuild()

    def begin_rebuild(self) -> None:
        """A warm start read a page at a time (the graph of record can be larger than any one message): the state
        is rebuilt from the pages that follow, in any order, then finish_rebuild. By default a new model's
        state is simply what it observes."""

    def rebuild_page(
        self, users: Sequence[str], items: Sequence[str], types: Sequence[str], last_ts: Sequence[int]
    ) -> None:
        """One page of the warm start's edges. By default each edge is observed once, in the order given; a model
        whose state is a set of edges rebuilds it exactly in any order (the temporal GAT, the co-occurrence)."""
        self.observe(InteractionBatch(list(users), list(items), list(types), [int(t) for t in last_ts]))

    def finish_rebuild(self) -> None:
        """After the warm start's last page."""

    def item_vectors(self) -> torch.Tensor | None:
        """[len(self.items), d] item vectors whose cosine says how alike two items are (the diversity control
        re-ranks with them); None: the model has none, and the items' categories stand in."""
        return None

    # -- shared serving helpers ----------------------------------------------------------------
    def ranking_scores(self, users: Sequence[str], exclude: str = "none") -> torch.Tensor:
        """What both serving (top_k) and the evaluation harness rank by: score(), the excluded items at -inf,
        then the diversity re-ranking (the identity while `diversity` is 0)."""
        return self._diversify(self._excluded_scores(users, exclude))

    def _excluded_scores(self, users: Sequence[str], exclude: str) -> torch.Tensor:
        _check_policy(exclude)
        scores = self.score(users)
        if exclude != "none":
            rows, cols = self.history.excluded(torch.tensor(self.users.lookup(users), dtype=torch.long), exclude)
            keep = cols < scores.shape[1]
            rows, cols = rows[keep].to(scores.device), cols[keep].to(scores.device)
            scores[rows, cols] = float("-inf")  # every excluded (row, item) in one indexing operation
        return scores

    def _diversify(self, scores: torch.Tensor) -> torch.Tensor:
        strength = _diversity.check_strength(self.diversity)
        if strength == 0.0 or scores.shape[1] < 2:
            return scores
        vectors = self.item_vectors()
        if vectors is None:
            vectors = self.item_categories.labels(self.items.ids[: scores.shape[1]])
        if vectors is None:
            if not self._diversity_warned:
                self._diversity_warned = True
                log.warning(
                    "diversity %.2f has no effect on %s: the model has no item vectors and no item has a "
                    "category (item records on the items topic bring them)",
                    strength,
                    self.name,
                )
            return scores
        return _diversity.mmr_rerank(scores, vectors[: scores.shape[1]], strength, self.diversity_depth)

    def top_k(self, users: Sequence[str], k: int, exclude: str = "purchased") -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, item indices), each [len(users), min(k, catalogue)], best first; -inf where an item is
        excluded by the policy (those sort last). With diversity on, the order is the re-ranked one and each
        score is still the model's own (so the scores of a list need not decrease)."""
        scores = self._excluded_scores(users, exclude)
        ranked = self._diversify(scores)
        top = torch.topk(ranked, min(k, ranked.shape[1]), dim=1)
        indices = self._ties_by_id(ranked, top.values, top.indices)
        values = top.values if ranked is scores else scores.gather(1, indices)
        return values.cpu(), indices.cpu()  # only [users, k] leaves a GPU, not the score matrix

    def _ties_by_id(self, scores: torch.Tensor, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Equal scores go in item-id order: where more items tie at the K-th score than the list has room for,
        the smallest ids get the places, and tied items in the list are ordered by id. torch.topk orders ties
        by index, and indices follow the order in which a process first saw each item: two workers holding the
        same state would otherwise publish different lists. Only rows with ties do any Python work."""
        if values.shape[1] == 0:
            return indices
        ids = self.items.ids
        last = values[:, -1:]
        crowded = ((scores == last).sum(1) > (values == last).sum(1)) & torch.isfinite(last[:, 0])
        for row in torch.nonzero(crowded).flatten().tolist():
            boundary = last[row, 0]
            above = int((values[row] > boundary).sum())
            tied = torch.nonzero(scores[row] == boundary).flatten().tolist()
            chosen = sorted(tied, key=ids.__getitem__)[: values.shape[1] - above]
            indices[row, above:] = torch.tensor(chosen, dtype=indices.dtype, device=indices.device)
        for row in torch.nonzero((values[:, 1:] == values[:, :-1]).any(1)).flatten().tolist():
            pairs = sorted(zip((-values[row]).tolist(), indices[row].tolist()), key=lambda p: (p[0], ids[p[1]]))
            indices[row] = torch.tensor([i for _, i in pairs], dtype=indices.dtype, device=indices.device)
        return indices

    def recommend(self, users: Sequence[str], k: int, exclude: str = "purchased", because: int = 0) -> list[list[dict]]:
        """Per user the top-k items as [{"item_id", "score"}], best first, excluded items left out. `because`:
        up to that many reasons per entry, from a model that can explain its lists (others ignore it)."""
        _check_policy(exclude)
        if not users or not len(self.items):
            return [[] for _ in users]
        values, indices = self.top_k(users, k, exclude)
        return self._lists(values, indices)

    def _lists(self, values: torch.Tensor, indices: torch.Tensor) -> list[list[dict]]:
        # excluded items are -inf and sort last, so each list is a prefix of its row
        values = ((values * 1e6).round() / 1e6).tolist()  # rounded as tensors: cheaper than per float
        ids = self.items.ids
        return [
            [{"item_id": ids[i], "score": v} for v, i in zip(row_values, row_indices) if v != float("-inf")]
            for row_values, row_indices in zip(values, indices.tolist())
        ]
