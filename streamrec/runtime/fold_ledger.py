"""Which input offsets the serving model has already folded in, per partition: so that each event costs model work
once per worker, whichever path brings it (the agent's own partitions, the replica feed of every partition, a
replay after a rebalance).

Per partition the ledger keeps a mark `folded_through`: every offset up to it is in the model's state. Both
paths read a partition in offset order, so the mark normally just moves on. Where the agent's events start past
the mark (it took the partition over at the group's committed offset while the feed was behind, or a model swap
rebuilt the state from an older point), they are folded at once and kept as one run ahead of the mark; the
replica feed keeps reading the partition up to that run (it reads in order and says which offsets it has read
through), and then the run joins the mark. A partition the agent owns is left to the agent by the feed only
while no such gap is open.

Forgetting is always safe here, skipping never is: when in doubt the ledger lets an event through (every servable
model's observe is idempotent), it never reports an event as folded that was not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, Protocol, TypeVar


class Positioned(Protocol):
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


P = TypeVar("P", bound=Positioned)


@dataclass
class _Partition:
    folded_through: int  # every offset <= this one is in the model's state
    run_start: int | None = None  # a run of folded offsets past a gap: run_start..run_end
    run_end: int = -1

    def holds(self, offset: int) -> bool:
        return offset <= self.folded_through or (
            self.run_start is not None and self.run_start <= offset <= self.run_end
        )

    def add(self, offset: int) -> None:
        if offset <= self.folded_through + 1:
            self.folded_through = max(self.folded_through, offset)
        elif self.run_start is not None and self.run_start <= offset <= self.run_end + 1:
            self.run_end = max(self.run_end, offset)
        else:  # a new run further on: the feed reads through the older one anyway (it is folded again, harmless)
            self.run_start, self.run_end = offset, offset
        self._join()

    def read_through(self, first: int, last: int) -> None:
        """Every record from `first` to `last` was read in order and folded (offsets Kafka skips included)."""
        if first <= self.folded_through + 1:
            self.folded_through = max(self.folded_through, last)
            self._join()

    def _join(self) -> None:
        if self.run_start is not None and self.run_start <= self.folded_through + 1:
            self.folded_through = max(self.folded_through, self.run_end)
            self.run_start, self.run_end = None, -1


class FoldLedger:
    """Shared by the event loop (which folds) and the replica feed's thread (which asks what to read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[int, _Partition] = {}
        self._owned: frozenset[int] = frozenset()
        self._agent_started: set[int] = set()  # owned partitions the agent has folded events of since assigned

    def restart(self, next_offsets: dict[int, int], must_reach: dict[int, int] | None = None) -> None:
        """The model's state was (re)built from the graph, which holds every offset before `next_offsets` (the
        group's committed ones); `must_reach`: offsets the previous model had folded, which the feed reads again
        before it leaves a partition to the agent (they may not have reached the graph yet)."""
        with self._lock:
            self._partitions = {p: _Partition(offset - 1) for p, offset in next_offsets.items()}
            for p, offset in (must_reach or {}).items():
                state = self._partitions.setdefault(p, _Partition(-1))
                if offset > state.folded_through:  # an empty run that ends there: the feed must read through it
                    state.run_start, state.run_end = offset + 1, offset
        # (an empty run joins the mark once the mark reaches its end)

    def folded_through(self) -> dict[int, int]:
        """Partition -> the highest offset such that every offset up to it is folded (runs past a gap count)."""
        with self._lock:
            return {p: max(s.folded_through, s.run_end) for p, s in self._partitions.items()}

    def unfolded(self, events: Iterable[P]) -> list[P]:
        """The events not folded yet, in their order."""
        with self._lock:
            return [
                e
                for e in events
                if e.partition not in self._partitions or not self._partitions[e.partition].holds(e.offset)
            ]

    def folded(self, events: Iterable[Positioned]) -> None:
        """The agent folded these (each partition's in offset order)."""
        with self._lock:
            for event in events:
                self._agent_started.add(event.partition)
                state = self._partitions.get(event.partition)
                if state is None:  # first sight without a known start (no replica feed): start the mark here
                    self._partitions[event.partition] = _Partition(event.offset)
                else:
                    state.add(event.offset)

    def read_through(self, ranges: dict[int, tuple[int, int]]) -> None:
        """The replica feed read and folded every record of partition p from ranges[p][0] through ranges[p][1]."""
        with self._lock:
            for p, (first, last) in ranges.items():
                self._partitions.setdefault(p, _Partition(first - 1)).read_through(first, last)

    def own(self, partitions: Iterable[int]) -> None:
        """The partitions this worker's agent consumes after a rebalance; it starts each at the group's committed
        offset, which may lie past what the model holds: until its first events show where, the feed reads on."""
        with self._lock:
            self._owned = frozenset(partitions)
            self._agent_started.clear()

    # -- what the replica feed asks (stream/replica.py, FollowPlan) -------------------------------------------
    def left_to_agent(self, partition: int) -> bool:
        """True when the feed need not read the partition: the agent owns it, has started folding it, and nothing
        before its events is missing from the model."""
        with self._lock:
            state = self._partitions.get(partition)
            started = partition in self._owned and partition in self._agent_started
            return started and state is not None and state.run_start is None

    def next_unfolded(self, partition: int) -> int | None:
        """The first offset the model has not folded (where the feed resumes a partition), None when unknown."""
        with self._lock:
            state = self._partitions.get(partition)
            return None if state is None else state.folded_through + 1
