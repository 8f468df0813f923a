"""The Faust application: micro-batches from `interactions` and `items`, dead letters, and published lists.

The stream layer knows Kafka and Faust only. What happens to a valid batch is the `BatchHandler`'s business
(the composition in streamrec/runtime/worker.py wires the graph store and the model server into it).

At-least-once: an interaction is acked only when (1) its batch's dead letters are acknowledged by the broker,
(2) the graph upsert succeeded, (3) the lists were refreshed and (4) acknowledged by the broker (how the
batches overlap: stream/batching.py). A failing stage is retried with back-off, never skipped; only records
that a sink rejects for good go to the dead letters instead (stream/retries.py). Items are low-volume:
`take_events` batches, acked when the loop body returns.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Awaitable, Callable, Protocol, Sequence

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

from . import metrics
from .batching import CoalescingLane, InFlight, Lane, MicroBatches
from .dead_letters import dead_letter_headers, dead_letter_value
from .events import Interaction, Item, Rejection, parse_interaction, parse_item
from .retries import apply_isolating, retry_until_done
from .topics import TopicNames

log = logging.getLogger(__name__)

MAX_BATCHES_IN_FLIGHT = 4  # batches taken but not yet written and published (then the agent stops buffering)
# A batch's lists (~3 KB each) go out in a few large record batches instead of one request per 16 KB (the
# client default), below the brokers' default 1 MB message limit. Measured on Apache Kafka 4.1, REES46 at
# 1,000 events/s: publish 40 -> 10 ms per batch, freshness p50 0.39 -> 0.10 s (one run each); on the light
# stack's Tansu it also kept the broker's CPU from growing with the number of batches (60 -> 17 ms).
LIST_BATCH_BYTES = 512 * 1024
ITEMS_WAIT_S = 0.05  # item records are few: take_events' window (the same for every load) is fine
STOP_GRACE_S = 10.0  # how long a stopping worker waits for batches in flight to be written and acked


class BatchHandler(Protocol):
    refresh_is_idempotent: bool  # True: refresh() may be given replayed events (and run beside the upsert)

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


def broker_credentials(settings):
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
                                     mechanism=settings.kafka_sasl_mechanism or "PLAIN", ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class _ConsumerThread(AIOKafkaConsumerThread):
    """Faust fixes the worker consumer's fetch_max_wait_ms at 1,500 ms. Apache Kafka answers a fetch as soon as
    data arrives, so there the value only paces idle polling (default 500 ms, the client's); a broker that holds
    every fetch for the full wait (the light stack's Tansu does: 500 ms -> 138 ms median delivery, 10 ms -> 4 ms,
    measured) adds it to every event's freshness (default 20 ms there). STREAMREC_FETCH_MAX_WAIT_MS sets it
    (aiokafka reads the attribute when the consumer starts)."""

    fetch_max_wait_ms = 1500

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class _Consumer(AIOKafkaConsumer):
    def _new_consumer_thread(self):
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


def create_app(settings, handler: BatchHandler, names: TopicNames, on_tick: Callable[[], None] | None = None) -> faust.App:
    """`on_tick` is called every second from the event loop (the liveness signal)."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        web_enabled=False,
        web_host="127.0.0.1",
        topic_allow_declare=False,  # topics are created with our partitions and configs (stream/topics.py)
        topic_disable_leader=True,
        producer_acks=-1,
        producer_max_batch_size=LIST_BATCH_BYTES,
        # Faust would wait on stop (and rebalance) until every buffered event is acked, and ours are acked only
        # when written: with the graph server down, SIGTERM never finished. The agent drains what it can for
        # STOP_GRACE_S itself; whatever is not acked then is delivered again (idempotent sinks).
        stream_wait_empty=False,
    )
    _ConsumerThread.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.transport.Consumer = _Consumer
    raw = dict(key_serializer="raw", value_serializer="raw")
    interactions = app.topic(names.interactions, **raw)
    items = app.topic(names.items, **raw)
    wait_s = settings.batch_wait_ms / 1000.0
    next_offsets: dict = {}  # TP -> next offset to process, for the lag gauge

    async def send_all(topic: str, records) -> None:
        """Hands every (key, value, headers) to the producer, then waits for all the broker's acks. The
        producer is called directly: a topic's send() adds per-message bookkeeping that cost about 1 ms each."""
        futures = [await app.producer.send(topic, key, value, None, None, headers) for key, value, headers in records]
        await asyncio.gather(*futures)

    origin: dict[int, faust.types.EventT] = {}  # id(parsed record) -> its event, while its batch is in flight

    async def dead_letter_rejected(stage: str, isolated) -> set[int]:
        """Sends the records a sink rejected for good to the dead letters; returns their ids."""
        if not isolated.rejected:
            return set()
        for record, reason in isolated.rejected:
            log.warning("%s rejected the record at %s for good (%s): sent to the dead letters", stage,
                        _position(origin[id(record)].message), reason)
        rejected = [(origin[id(record)], Rejection("graph_rejected", reason)) for record, reason in isolated.rejected]
        await retry_until_done("dead_letters", lambda: send_dead_letters(rejected))
        return {id(record) for record, _ in isolated.rejected}

    async def send_dead_letters(rejected: list[tuple[faust.types.EventT, Rejection]]) -> None:
        records = []
        for event, rejection in rejected:
            message = event.message
            records.append((message.key, dead_letter_value(
                rejection, message.value, topic=message.topic, partition=message.partition, offset=message.offset,
                key=message.key), dead_letter_headers(rejection)))
        await send_all(names.dead_letters, records)
        for _, rejection in rejected:
            metrics.DEAD_LETTERS.labels(rejection.reason).inc()

    async def publish(lists: Sequence[tuple[str, bytes]]) -> None:
        await send_all(names.recommendations, [(user.encode(), value, None) for user, value in lists])

    in_flight = InFlight(MAX_BATCHES_IN_FLIGHT)

    async def publish_lists(lists: Sequence[tuple[str, bytes]], valid: list[Interaction]) -> None:
        with metrics.PUBLISH.time():
            await retry_until_done("publish", lambda: publish(lists))
        published = time.time()
        for event in valid:
            metrics.FRESHNESS.observe(max(0.0, published - event.kafka_ts))

    async def upsert(valid: list[Interaction]) -> tuple[set[int], set[int]]:
        """The ids of the events new to the graph and of those it rejected (one write may hold several batches)."""
        with metrics.GRAPH_UPSERT.time():
            isolated = await apply_isolating("graph_upsert", handler.upsert_interactions, valid)
        rejected = await dead_letter_rejected("graph_upsert", isolated)
        return {id(event) for fresh in isolated.results for event in fresh}, rejected

    graph_lane, publish_lane = CoalescingLane(upsert), Lane()

    async def process_interactions(batch: list[faust.types.EventT], ack: Callable[[faust.types.EventT], Awaitable]) -> None:
        """The model's part of a batch, awaited so that batches reach the model in order; the graph upsert and
        the publication run in their lanes, and the batch is acked by `finish` when both are done."""
        started = time.perf_counter()
        metrics.BATCH_SIZE.observe(len(batch))
        # ages when taken, from the record timestamps: the oldest record's (the whole wait) and the newest one's
        # (about the transport alone: producer linger, broker, fetch, Faust's hand-off; it arrived just now)
        now, stamps = time.time(), [e.message.timestamp for e in batch]
        metrics.STAGE_SECONDS.labels("intake").observe(max(0.0, now - min(stamps)))
        metrics.STAGE_SECONDS.labels("arrival").observe(max(0.0, now - max(stamps)))
        valid: list[Interaction] = []
        rejected = []
        validating = time.perf_counter()
        for event in batch:
            message = event.message
            parsed = parse_interaction(message.value, topic=message.topic, partition=message.partition, offset=message.offset,
                                       kafka_ts=message.timestamp)
            if isinstance(parsed, Rejection):
                rejected.append((event, parsed))
                metrics.EVENTS.labels("invalid", "dead_letter").inc()
            else:
                valid.append(parsed)
                origin[id(parsed)] = event
        metrics.STAGE_SECONDS.labels("validate").observe(time.perf_counter() - validating)
        if rejected:
            await retry_until_done("dead_letters", lambda: send_dead_letters(rejected))
        for event in batch:
            next_offsets[event.message.tp] = event.message.offset + 1
        upserted = published = None
        if valid:
            upserted = graph_lane.submit(valid)
            overlap = handler.refresh_is_idempotent  # read once: a model swap may change it mid-batch
            # an idempotent model may see replayed events again, so the lists need not wait for the graph write;
            # otherwise the model must see each event once: only the events new to the graph
            if overlap:
                refresh_with = valid
            else:
                fresh_ids, _ = await upserted
                refresh_with = [e for e in valid if id(e) in fresh_ids]
            with metrics.REFRESH.time():
                lists = await retry_until_done("refresh", lambda: handler.refresh(valid, refresh_with))
            published = publish_lane.submit(lambda: publish_lists(lists, valid))
        await in_flight.start(finish(batch, valid, upserted, published, started, ack))

    async def finish(batch, valid, upserted, published, started: float, ack) -> None:
        try:
            if valid:
                (fresh_ids, rejected_ids), _ = await asyncio.gather(upserted, published)
                for event in valid:
                    outcome = "dead_letter" if id(event) in rejected_ids else \
                        "applied" if id(event) in fresh_ids else "replayed"
                    metrics.EVENTS.labels(event.type, outcome).inc()
        finally:
            for parsed in valid:
                origin.pop(id(parsed), None)
        for event in batch:
            await ack(event)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def run_batches(batches: MicroBatches, ack) -> None:
        while True:
            await process_interactions(await batches.take(), ack)

    async def process_items(batch: Sequence[faust.types.EventT]) -> None:
        valid: list[Item] = []
        rejected = []
        for event in batch:
            parsed = parse_item(event.message.value)
            if isinstance(parsed, Rejection):
                rejected.append((event, parsed))
                metrics.ITEMS.labels("dead_letter").inc()
            else:
                valid.append(parsed)
                origin[id(parsed)] = event
        if rejected:
            await retry_until_done("dead_letters", lambda: send_dead_letters(rejected))
        try:
            if valid:
                isolated = await apply_isolating("item_upsert", handler.upsert_items, valid)
                refused = len(await dead_letter_rejected("item_upsert", isolated))
                metrics.ITEMS.labels("applied").inc(len(valid) - refused)
                metrics.ITEMS.labels("dead_letter").inc(refused)
        finally:
            for parsed in valid:
                origin.pop(id(parsed), None)

    @app.agent(interactions, name="interactions")
    async def interactions_agent(stream):
        await retry_until_done("start", handler.start)
        manual = stream.noack()  # events are acked by `finish`, when their batch is written and published
        batches = MicroBatches(settings.batch_size, wait_s, max_pending=MAX_BATCHES_IN_FLIGHT * settings.batch_size)
        runner = asyncio.ensure_future(run_batches(batches, manual.ack))
        try:
            async for event in manual.events():
                if runner.done():
                    runner.result()  # the batch loop failed (a bug, as every stage retries): stop the agent
                await batches.put(event)
        finally:
            runner.cancel()
            await in_flight.drain(STOP_GRACE_S)  # a stop acks what finished; the rest is delivered again

    @app.agent(items, name="items")
    async def items_agent(stream):
        await retry_until_done("start", handler.start)
        async for batch in stream.take_events(settings.batch_size, within=ITEMS_WAIT_S):
            await _finish_before_ack(process_items(batch))

    @app.timer(1.0)
    async def heartbeat():
        if on_tick is not None:
            on_tick()
        try:
            await handler.periodic()
        except Exception:  # background work must not stop the timer
            log.exception("periodic work failed")
        for tp in app.consumer.assignment():
            if tp.topic == names.interactions:
                high = app.consumer.highwater(tp)
                position = next_offsets.get(tp)  # unknown until this worker processed a batch of tp
                if high is not None and high >= 0 and position is not None:
                    metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, high - position))

    return app


async def _finish_before_ack(work: Awaitable) -> None:
    """A batch that was started is finished even when the worker is asked to stop: cancelling the agent in the
    middle would let `take_events` ack the half-processed batch on its way out."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _position(message) -> str:
    return f"{message.topic}/{message.partition}@{message.offset}"
