"""What the agents do with a micro-batch of records, apart from Faust: validate, write, refresh, publish, ack.

At-least-once: an interaction is acked only when (1) its batch's dead letters are acknowledged by the broker,
(2) the graph upsert succeeded, (3) the lists were refreshed and (4) acknowledged by the broker (how the
batches overlap: stream/batching.py). A failing stage is retried with back-off, never skipped; only records
that a sink rejects for good go to the dead letters instead (stream/retries.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
import logging
import time
from typing import Any, Awaitable, Callable, Hashable, Protocol, Sequence, TypeVar

from . import metrics
from .batching import CoalescingLane, InFlight, Lane
from .events import Interaction, Item, Rejection, parse_interaction, parse_item
from .kafka_out import KafkaOut
from .records import Delivered, Message
from .retries import Isolated, apply_isolating, retry_until_done

log = logging.getLogger(__name__)

# events taken but not yet written and published, in batches of the largest size (then the agent stops buffering):
# with the graph written behind the lists, a flush interval's worth of small batches is in flight at once
MAX_BATCHES_IN_FLIGHT = 4
Parsed = TypeVar("Parsed", Interaction, Item)
Ack = Callable[[Any], Awaitable[object]]  # the stream's ack of one Faust event
Rejected = list[tuple[Delivered, Rejection]]  # each invalid or refused record's event, with the reason
Upserted = tuple[set[int], set[int]]  # ids of the events new to the graph, and of those it refused


class BatchHandler(Protocol):
    @property
    def refresh_is_idempotent(self) -> bool:
        """True: refresh() may be given replayed events (and run beside the upsert)."""

    async def start(self) -> None:
        """Prepares the sinks (schema, model state); called before the first batch, may be called again."""

    async def upsert_interactions(self, events: list[Interaction]) -> list[Interaction]:
        """Writes the batch to the graph store; returns the events not applied before (replays filtered out).
        Raises stream.retries.RecordsRejected when the store refuses these events for good (upsert_items likewise)."""

    async def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> list[tuple[str, bytes]]:
        """Folds the fresh events into the model; returns (user_id, list record) for every user in `events`."""

    async def upsert_items(self, items: list[Item]) -> None: ...

    async def periodic(self) -> None:
        """Background work between batches (called every second from the event loop)."""

    def assigned(self, partitions: set[int]) -> None:
        """The partitions of the interactions topic this worker's agent consumes, after each rebalance step."""


class Origins:
    """The Faust event of each valid record while its batch is in flight: what a dead letter is made of when a
    sink refuses the record later (one graph write may hold several batches' records)."""

    def __init__(self) -> None:
        self._events: dict[int, Delivered] = {}  # id(parsed record) -> its Faust event

    def parse(
        self, batch: Sequence[Delivered], parse: Callable[[Message], Parsed | Rejection]
    ) -> tuple[list[Parsed], Rejected]:
        """(the valid records, tracked until `forget`; each invalid record's event with the reason)."""
        valid: list[Parsed] = []
        rejected: Rejected = []
        for event in batch:
            parsed = parse(event.message)
            if isinstance(parsed, Rejection):
                rejected.append((event, parsed))
            else:
                valid.append(parsed)
                self._events[id(parsed)] = event
        return valid, rejected

    def refused(self, stage: str, isolated: Isolated[Any, Any]) -> Rejected:
        """The events of the records a sink refused for good, with its reason (each logged once)."""
        refused: Rejected = []
        for record, reason in isolated.rejected:
            event = self._events[id(record)]
            log.warning(
                "%s rejected the record at %s for good (%s): sent to the dead letters",
                stage,
                position(event.message),
                reason,
            )
            refused.append((event, Rejection("graph_rejected", reason)))
        return refused

    def forget(self, records: Sequence[object]) -> None:
        for record in records:
            self._events.pop(id(record), None)

    def __len__(self) -> int:
        return len(self._events)


def interaction_of(message: Message) -> Interaction | Rejection:
    return parse_interaction(
        message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        kafka_ts=message.timestamp,
    )


def item_of(message: Message) -> Item | Rejection:
    return parse_item(message.value)


def position(message: Message) -> str:
    return f"{message.topic}/{message.partition}@{message.offset}"


async def send_dead_letters(out: KafkaOut, rejected: Rejected) -> None:
    if rejected:
        await retry_until_done("dead_letters", lambda: out.dead_letters(rejected))


class InteractionBatches:
    """One micro-batch of `interactions` after another: the model's part is awaited, so that batches reach the
    model in order; the graph upsert and the publication run in their lanes (one at a time, in batch order),
    and each batch is acked by `_finish` when both are done."""

    def __init__(
        self, handler: BatchHandler, out: KafkaOut, max_events_in_flight: int = 8_000, graph_flush_s: float = 0.0
    ):
        """`graph_flush_s`: how long the graph write waits for more batches to join it, when the lists need not
        wait for it (an idempotent model): fewer, larger transactions for the graph server, at any rate."""
        self.handler = handler
        self.out = out
        self.origins = Origins()
        self.in_flight = InFlight(max_events_in_flight)
        self.next_offsets: dict[Hashable, int] = {}  # TP -> next offset to process, for the lag gauge
        self.graph_flush_s = graph_flush_s
        self._graph_lane = CoalescingLane(self._upsert, max_items=max_events_in_flight // 2)
        self._publish_lane = Lane()

    async def process(self, batch: Sequence[Delivered], ack: Ack) -> None:
        started = time.perf_counter()
        metrics.BATCH_SIZE.observe(len(batch))
        observe_ages(batch)
        validating = time.perf_counter()
        valid, rejected = self.origins.parse(batch, interaction_of)
        metrics.STAGE_SECONDS.labels("validate").observe(time.perf_counter() - validating)
        metrics.EVENTS.labels("invalid", "dead_letter").inc(len(rejected))
        await send_dead_letters(self.out, rejected)
        for event in batch:
            self.next_offsets[event.message.tp] = event.message.offset + 1
        upserted: asyncio.Future[Upserted] | None = None
        published: asyncio.Future[None] | None = None
        if valid:
            overlap = self.handler.refresh_is_idempotent  # read once: a model swap may change it mid-batch
            self._graph_lane.linger_s = self.graph_flush_s if overlap else 0.0  # (otherwise the lists wait for it)
            upserted = self._graph_lane.submit(valid)
            # an idempotent model may see replayed events again, so the lists need not wait for the graph write;
            # otherwise the model must see each event once: only the events new to the graph
            if overlap:
                refresh_with = valid
            else:
                fresh_ids, _ = await upserted
                refresh_with = [e for e in valid if id(e) in fresh_ids]
            with metrics.STAGE_SECONDS.labels("refresh").time():
                lists = await retry_until_done("refresh", lambda: self.handler.refresh(valid, refresh_with))
            published = self._publish_lane.submit(lambda: self._publish(lists, valid))
        await self.in_flight.start(self._finish(batch, valid, upserted, published, started, ack), len(batch))

    async def _upsert(self, valid: list[Interaction]) -> Upserted:
        """The ids of the events new to the graph and of those it rejected (one write may hold several batches)."""
        with metrics.STAGE_SECONDS.labels("graph_upsert").time():
            isolated = await apply_isolating("graph_upsert", self.handler.upsert_interactions, valid)
        await send_dead_letters(self.out, self.origins.refused("graph_upsert", isolated))
        return {id(event) for fresh in isolated.results for event in fresh}, {id(r) for r, _ in isolated.rejected}

    async def _publish(self, lists: Sequence[tuple[str, bytes]], valid: list[Interaction]) -> None:
        with metrics.STAGE_SECONDS.labels("publish").time():
            await retry_until_done("publish", lambda: self.out.lists(lists))
        published = time.time()
        for event in valid:
            metrics.FRESHNESS.observe(max(0.0, published - event.kafka_ts))

    async def _finish(
        self,
        batch: Sequence[Delivered],
        valid: list[Interaction],
        upserted: asyncio.Future[Upserted] | None,
        published: asyncio.Future[None] | None,
        started: float,
        ack: Ack,
    ) -> None:
        try:
            if upserted is not None and published is not None:  # (both are, when the batch has valid events)
                (fresh_ids, rejected_ids), _ = await asyncio.gather(upserted, published)
                outcomes = Counter(
                    (
                        event.type,
                        "dead_letter"
                        if id(event) in rejected_ids
                        else "applied"
                        if id(event) in fresh_ids
                        else "replayed",
                    )
                    for event in valid
                )
                for labels, count in outcomes.items():  # one metric update per kind, not per event
                    metrics.EVENTS.labels(*labels).inc(count)
        finally:
            self.origins.forget(valid)
        for event in batch:
            await ack(event)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)


def observe_ages(batch: Sequence[Delivered]) -> None:
    """Ages when taken, from the record timestamps: the oldest record's (the whole wait) and the newest one's
    (about the transport alone: producer linger, broker, fetch, Faust's hand-off; it arrived just now)."""
    now, stamps = time.time(), [e.message.timestamp for e in batch]
    metrics.STAGE_SECONDS.labels("intake").observe(max(0.0, now - min(stamps)))
    metrics.STAGE_SECONDS.labels("arrival").observe(max(0.0, now - max(stamps)))


async def process_items(handler: BatchHandler, out: KafkaOut, batch: Sequence[Delivered]) -> None:
    """Items are low-volume: a batch is written at once (and acked by take_events when this returns)."""
    origins = Origins()
    valid, rejected = origins.parse(batch, item_of)
    metrics.ITEMS.labels("dead_letter").inc(len(rejected))
    await send_dead_letters(out, rejected)
    if valid:
        isolated = await apply_isolating("item_upsert", handler.upsert_items, valid)
        refused = origins.refused("item_upsert", isolated)
        await send_dead_letters(out, refused)
        metrics.ITEMS.labels("applied").inc(len(valid) - len(refused))
        metrics.ITEMS.labels("dead_letter").inc(len(refused))


def consumer_lag(high_water: int | None, next_offset: int | None) -> int | None:
    """Records not yet processed; None while either end is unknown (no batch of the partition processed yet)."""
    if high_water is None or high_water < 0 or next_offset is None:
        return None
    return max(0, high_water - next_offset)
