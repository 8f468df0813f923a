"""Every worker's model follows every partition of `interactions`, while each worker owns only the lists of
the users on its own partitions.

With several workers in one consumer group, a worker's agent sees its partitions only; an item's recent users
(and so its embedding, and every list that ranks it) would differ from worker to worker and from the truth.
So each worker also reads the other partitions outside the group and folds the valid events into its model:
the whole graph is in every worker's memory (GraphJet's choice, Sharma et al., VLDB 2016), and once the stream
is drained every worker holds the same state as one worker would. Each event is read and folded once per
worker: a partition the worker's own agent consumes is paused here (its FollowPlan says so), and the worker
skips events its model already holds (streamrec/runtime/fold_ledger.py). The model's observe is idempotent (a
set of edges with their newest times), so an event that does reach it twice — at a hand-over of a partition,
or after a rewind — changes nothing. Cost: every worker folds in every event once (the model's observe work
does not shrink with more workers; the graph upsert, the ranking and the publication do).

Where it starts: the group's committed offsets, read BEFORE the graph is read for a warm start. An event
behind a committed offset is in the graph (offsets are committed only after the upsert); one after it is
read again here. Nothing in between is missed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Protocol

from . import metrics
from .events import Interaction, Item, parse_interaction, parse_item

if TYPE_CHECKING:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord
    from prometheus_client import Gauge

log = logging.getLogger(__name__)

POLL_MS = 200
MAX_RECORDS = 2_000


def committed_offsets(bootstrap: str, group_id: str, topic: str, **client_options: Any) -> dict[int, int]:
    """Partition -> the group's committed offset; the earliest offset where the group has committed nothing."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False, **client_options)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        earliest = consumer.beginning_offsets(partitions)
        return {
            tp.partition: (consumer.committed(tp) if consumer.committed(tp) is not None else earliest[tp])
            for tp in partitions
        }
    finally:
        consumer.close()


class FollowPlan(Protocol):
    """What the worker tells the feed about its partitions (streamrec/runtime/fold_ledger.py)."""

    def left_to_agent(self, partition: int) -> bool:
        """True while this worker's own agent folds the partition's events and none before them is missing."""

    def next_unfolded(self, partition: int) -> int | None:
        """The first offset of the partition not yet in the model (where reading resumes); None when unknown."""


Fold = Callable[[list[Any], dict[int, tuple[int, int]]], Coroutine[Any, Any, None]]


def interaction_of(record: ConsumerRecord) -> Interaction | None:
    """A valid interaction, or None (the partition's owner dead-letters the others)."""
    parsed = parse_interaction(
        record.value,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        kafka_ts=record.timestamp / 1000.0,
    )
    return parsed if isinstance(parsed, Interaction) else None


def item_of(record: ConsumerRecord) -> Item | None:
    """A valid item record, or None (the partition's owner dead-letters the others)."""
    parsed = parse_item(record.value)
    return parsed if isinstance(parsed, Item) else None


class ReplicaFeed:
    """Reads the partitions of `topic` from `offsets` on a thread of its own (no consumer group) and hands each
    poll's valid records (`parse`: interactions by default, or item records) to `fold(records, read)` on the
    event loop, waiting for it (back-pressure); `read` says, per partition, the first and last offset that poll
    read (so records skipped as invalid count as read). A partition the plan leaves to the worker's own agent is
    paused (not fetched, not parsed): with one worker, every event is read once; when the agent gives it up,
    reading resumes where the model's state ends. `lag`: the gauge of what is left to read (None: not kept)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        fold: Fold,
        loop: asyncio.AbstractEventLoop,
        plan: FollowPlan | None = None,
        parse: Callable[[ConsumerRecord], Any | None] = interaction_of,
        lag: Gauge | None = metrics.FOLLOW_LAG,
        **client_options: Any,
    ):
        self.bootstrap, self.topic, self.fold, self.loop, self.plan = bootstrap, topic, fold, loop, plan
        self.parse, self.lag = parse, lag
        self.client_options = client_options
        self.positions: dict[int, int] = {}  # partition -> next offset to read
        self.paused: set[int] = set()
        self._rewind: dict[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, offsets: dict[int, int]) -> None:
        self.positions = dict(offsets)
        self._thread = threading.Thread(target=self._run, name=f"replica-feed-{self.topic}", daemon=True)
        self._thread.start()

    def rewind(self, offsets: dict[int, int]) -> None:
        """Reads again from `offsets` (after a model swap rebuilt the state from the graph)."""
        self._rewind = dict(offsets)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_poll_records=MAX_RECORDS,
            **self.client_options,
        )
        try:
            partitions = [TopicPartition(self.topic, p) for p in sorted(self.positions)]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, self.positions[tp.partition])
            while not self._stop.is_set():
                if self._rewind is not None:
                    offsets, self._rewind = self._rewind, None
                    for tp in partitions:
                        self.positions[tp.partition] = offsets.get(tp.partition, self.positions[tp.partition])
                        consumer.seek(tp, self.positions[tp.partition])
                self._follow_plan(consumer, partitions)
                if len(self.paused) == len(partitions):  # all left to the agent: nothing to fetch
                    self._set_lag(0)
                    self._stop.wait(POLL_MS / 1000.0)
                    continue
                before = dict(self.positions)
                events: list[Any] = []
                for tp, records in consumer.poll(timeout_ms=POLL_MS).items():
                    for record in records:
                        parsed = self.parse(record)
                        if parsed is not None:
                            events.append(parsed)
                    self.positions[tp.partition] = records[-1].offset + 1
                read = {p: (before[p], self.positions[p] - 1) for p in self.positions if self.positions[p] > before[p]}
                if read and not self._hand_over(events, read):
                    self._rewind = before  # not folded in: read them again
                    continue
                followed = [tp for tp in partitions if tp.partition not in self.paused]
                highs = [consumer.highwater(tp) for tp in followed]
                if None not in highs:
                    self._set_lag(sum(max(0, high - self.positions[tp.partition]) for tp, high in zip(followed, highs)))
        except Exception:  # the feed must never take the worker down; its lists stay right for its own users
            log.exception(
                "the replica feed of %s stopped: this worker's model sees only its own partitions", self.topic
            )
        finally:
            self._set_lag(-1)
            consumer.close()

    def _set_lag(self, value: int) -> None:
        if self.lag is not None:
            self.lag.set(value)

    def _follow_plan(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Pauses the partitions left to the agent; resumes the others where the model's state ends."""
        if self.plan is None:
            return
        for tp in partitions:
            p = tp.partition
            leave = self.plan.left_to_agent(p)
            if leave and p not in self.paused:
                consumer.pause(tp)
                self.paused.add(p)
            elif not leave and p in self.paused:
                consumer.resume(tp)
                self.paused.discard(p)
                resume_at = self.plan.next_unfolded(p)
                if resume_at is not None and resume_at != self.positions[p]:
                    self.positions[p] = resume_at
                    consumer.seek(tp, resume_at)

    def _hand_over(self, events: list[Any], read: dict[int, tuple[int, int]]) -> bool:
        """True once the model has folded the events in."""
        future = asyncio.run_coroutine_threadsafe(self.fold(events, read), self.loop)
        while not self._stop.is_set():
            try:
                future.result(timeout=1.0)
                return True
            except TimeoutError:
                continue
            except Exception as exc:
                log.warning(
                    "folding %d followed events failed (%s: %s); they are read again",
                    len(events),
                    type(exc).__name__,
                    exc,
                )
                self._stop.wait(1.0)
                return False
        future.cancel()
        return False
