"""The retention rule's side in the graph of record: the worker deletes the edges the model has forgotten.

The model host forgets edges older than STREAMREC_RETENTION_DAYS behind the newest event as events arrive
(model_server/contract.py, Recommender.enforce_retention) and reports its cutoff in ModelInfo; the worker then
deletes the same edges from the graph store, in bounded transactions, in the background of its periodic tick, so
that a worker that starts later rebuilds the same state from the graph (it also applies the cutoff to what it
reads, in case the deletion has not reached every edge). Every worker of a group does it: the deletions are
idempotent, and one that loses a lock race is retried at the next turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from graph_store import GraphStore
from graph_store.errors import GraphRejected, GraphUnavailable
from stream import metrics

log = logging.getLogger(__name__)


class GraphPruner:
    def __init__(self, store: Callable[[], Awaitable[GraphStore]], every_s: float):
        """`every_s`: the least time between two deletions (STREAMREC_RETENTION_PRUNE_S)."""
        self._store, self.every_s = store, every_s
        self._task: asyncio.Task[int] | None = None
        self._last_start = -float("inf")
        self._indexed = False
        self.pruned_to: int | None = None  # the cutoff of the last deletion that finished

    def tick(self, cutoff: int | None) -> None:
        """Starts a deletion of the edges before `cutoff` when one is due and none is running."""
        if cutoff is None or (self._task is not None and not self._task.done()):
            return
        if time.monotonic() - self._last_start < self.every_s:  # (also when the cutoff has not moved: a late or
            return  # replayed event may have written an edge behind it again)
        self._last_start = time.monotonic()
        self._task = asyncio.ensure_future(self.prune(cutoff))

    async def prune(self, cutoff: int) -> int:
        """Deletes the edges before `cutoff` now; returns how many (0 after a failure, which is logged)."""
        try:
            store = await self._store()
            if not self._indexed:
                await store.ensure_retention_index()
                self._indexed = True
            started = time.perf_counter()
            deleted = await store.forget_before(cutoff)
        except (GraphUnavailable, GraphRejected) as exc:
            log.warning("could not delete the graph's edges before %d (retention), will try again: %s", cutoff, exc)
            return 0
        self.pruned_to = cutoff
        metrics.GRAPH_PRUNED_TO.set(cutoff)
        if deleted:
            log.info("retention: deleted %d edges before %d in %.2f s", deleted, cutoff, time.perf_counter() - started)
        return deleted
