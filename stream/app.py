"""The Faust application: micro-batches from `interactions` and `items`, dead letters, and published lists.

The stream layer knows Kafka and Faust only. What happens to a batch is stream/processing.py's business, and
what happens to a valid batch the `BatchHandler`'s (the composition in streamrec/runtime/worker.py wires the
graph store and the model server into it). This module builds the Faust app and declares its agents and timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, cast

import faust
from faust.sensors import Monitor
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport
from faust.types import TP, EventT, StreamT
from faust.types.auth import CredentialsT
from faust.types.tuples import Message

from . import metrics
from .batching import InFlight, MicroBatches
from .kafka_out import Headers, KafkaOut
from .processing import MAX_BATCHES_IN_FLIGHT, BatchHandler, InteractionBatches, consumer_lag, process_items
from .retries import retry_until_done
from .topics import TopicNames

if TYPE_CHECKING:
    import aiokafka

log = logging.getLogger(__name__)

# A batch's lists (~3 KB each) go out in a few large record batches instead of one request per 16 KB (the
# client default), below the brokers' default 1 MB message limit. Measured on Apache Kafka 4.1, REES46 at
# 1,000 events/s: publish 40 -> 10 ms per batch, freshness p50 0.39 -> 0.10 s (one run each); on the light
# stack's Tansu it also kept the broker's CPU from growing with the number of batches (60 -> 17 ms).
LIST_BATCH_BYTES = 512 * 1024
ITEMS_WAIT_S = 0.05  # item records are few: take_events' window (the same for every load) is fine
STOP_GRACE_S = 10.0  # how long a stopping worker waits for batches in flight to be written and acked


class AppSettings(Protocol):
    """What the stream layer reads of the settings (streamrec/runtime/settings.py's Settings has it)."""

    @property
    def home(self) -> Path: ...
    @property
    def app_id(self) -> str: ...
    @property
    def bootstrap(self) -> str: ...
    @property
    def http_url(self) -> str: ...
    @property
    def kafka_security_protocol(self) -> str: ...
    @property
    def kafka_ssl_cafile(self) -> str | None: ...
    @property
    def kafka_sasl_mechanism(self) -> str | None: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> str | None: ...
    @property
    def session_timeout_s(self) -> float: ...
    @property
    def fetch_max_wait_ms(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def batch_wait_ms(self) -> int: ...
    @property
    def graph_flush_ms(self) -> int: ...


def broker_credentials(settings: AppSettings) -> CredentialsT | None:
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
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

    def _create_worker_consumer(self, transport: Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class _LeanMonitor(Monitor):
    """Faust's Monitor sensor keeps statistics of every message and stream event for Faust's web views (off here:
    ours are in Prometheus): ~6 % of the worker's busy time at 1,000 events/s (py-spy, REES46). This one keeps only
    what Faust itself reads, the time each partition's stream last took an event (its "stream is slow" check)."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any], state: dict[Any, Any] | None = None
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass


class _Consumer(AIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


def faust_app(settings: AppSettings) -> faust.App:
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)  # Faust creates the app's folder, not its parents
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        # Faust keeps a folder per app (a lock and table state; ours are in memory): under STREAMREC_HOME, not
        # in whatever folder the worker was started from
        datadir=str(settings.home / "faust" / "{conf.name}-data"),
        web_enabled=False,
        web_host="127.0.0.1",
        # what the partition assignor tells every member about this one: the owner of a user's partition is
        # found by its URL (Faust's topic routing); GET /recommendations/{user} redirects there
        canonical_url=settings.http_url,
        topic_allow_declare=False,  # topics are created with our partitions and configs (stream/topics.py)
        topic_disable_leader=True,
        producer_acks=-1,
        producer_max_batch_size=LIST_BATCH_BYTES,
        # Faust would wait on stop (and rebalance) until every buffered event is acked, and ours are acked only
        # when written: with the graph server down, SIGTERM never finished. The agent drains what it can for
        # STOP_GRACE_S itself; whatever is not acked then is delivered again (idempotent sinks).
        stream_wait_empty=False,
        Monitor=_LeanMonitor,
    )
    _ConsumerThread.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.transport.Consumer = _Consumer  # type: ignore[misc]  # faust types it a ClassVar; only this app's is ours
    return app


class _LazyProducer:
    """The app's producer exists once the app runs; the processing is built before."""

    def __init__(self, app: faust.App):
        self.app = app

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> Awaitable[Any]:
        return await self.app.producer.send(topic, key, value, partition, timestamp, headers)


def create_app(
    settings: AppSettings, handler: BatchHandler, names: TopicNames, on_tick: Callable[[], None] | None = None
) -> faust.App:
    """`on_tick` is called every second from the event loop (the liveness signal)."""
    app = faust_app(settings)
    interactions = app.topic(names.interactions, key_serializer="raw", value_serializer="raw")
    items = app.topic(names.items, key_serializer="raw", value_serializer="raw")
    out = KafkaOut(_LazyProducer(app), names)
    batches = InteractionBatches(
        handler,
        out,
        max_events_in_flight=MAX_BATCHES_IN_FLIGHT * settings.batch_size,
        graph_flush_s=settings.graph_flush_ms / 1000.0,
    )

    @app.agent(interactions, name="interactions")
    async def interactions_agent(stream: StreamT[Any]) -> None:
        await retry_until_done("start", handler.start)
        await run_interactions(stream, batches, settings)

    @app.agent(items, name="items")
    async def items_agent(stream: StreamT[Any]) -> None:
        await retry_until_done("start", handler.start)
        await run_items(stream, handler, out, settings)

    periodic: list[asyncio.Future[None]] = []  # the one run of handler.periodic() in progress, if any

    @app.timer(1.0)  # type: ignore[untyped-decorator]  # faust's App.timer returns a bare Callable
    async def heartbeat() -> None:
        if on_tick is not None:
            on_tick()
        # the periodic work (stale sweep, a model swap: seconds at times) runs beside the timer, one run at a
        # time: awaited here, it held up the liveness tick and the lag gauge, and mode warned "Timer ... is
        # overlapping" at every swap
        if not periodic or periodic[0].done():
            periodic[:] = [app.add_future(_logging_failures(handler.periodic()))]
        for tp in app.consumer.assignment():
            if tp.topic == names.interactions:
                lag = consumer_lag(app.consumer.highwater(tp), batches.next_offsets.get(tp))
                if lag is not None:
                    metrics.CONSUMER_LAG.labels(str(tp.partition)).set(lag)

    owned: set[int] = set()  # the partitions of `interactions` this worker's agent consumes

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types receivers as taking any *args
    async def on_revoked(sender: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == names.interactions}
        owned.difference_update(gone)
        handler.assigned(set(owned))
        metrics.ASSIGNED_PARTITIONS.set(len(owned))
        for partition in gone:  # its lag is its new owner's to export: a stale 0 here would hide it
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(str(partition))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types receivers as taking any *args
    async def on_assigned(sender: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        owned.clear()
        owned.update(tp.partition for tp in assigned if tp.topic == names.interactions)
        handler.assigned(set(owned))
        metrics.ASSIGNED_PARTITIONS.set(len(owned))

    return app


async def _logging_failures(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:  # background work must not stop the next runs
        log.exception("periodic work failed")


def _manual_acks(stream: StreamT[Any]) -> StreamT[Any]:
    """The stream, its events acked by us (faust's StreamT does not declare noack; its Stream, an agent's, has it)."""
    return cast("faust.Stream[Any]", stream).noack()


async def run_items(stream: StreamT[Any], handler: BatchHandler, out: KafkaOut, settings: AppSettings) -> None:
    """Item records in micro-batches, one batch written at a time (the last record of an item wins), each acked
    once written. Faust's `take_events` acks a batch on its way out even when it was not written, so a stop had
    to wait for the write: forever with the graph server down."""
    manual = _manual_acks(stream)
    one_at_a_time = InFlight(1)  # (a batch larger than the bound starts alone: one batch in flight)

    async def write_and_ack(batch: list[EventT[Any]]) -> None:
        await process_items(handler, out, batch)
        for event in batch:
            await manual.ack(event)

    async def start(batch: list[EventT[Any]]) -> None:
        await one_at_a_time.start(write_and_ack(batch), len(batch))

    buffered: MicroBatches[EventT[Any]] = MicroBatches(
        settings.batch_size, ITEMS_WAIT_S, max_pending=settings.batch_size
    )
    await buffer_and_take(manual, buffered, start, one_at_a_time)


async def run_interactions(stream: StreamT[Any], batches: InteractionBatches, settings: AppSettings) -> None:
    """Buffers the stream's events and hands them over in micro-batches; events are acked by the batches, when
    written and published."""
    manual = _manual_acks(stream)

    async def process(batch: list[EventT[Any]]) -> None:
        await batches.process(batch, manual.ack)

    buffered: MicroBatches[EventT[Any]] = MicroBatches(
        settings.batch_size, settings.batch_wait_ms / 1000.0, max_pending=MAX_BATCHES_IN_FLIGHT * settings.batch_size
    )
    await buffer_and_take(manual, buffered, process, batches.in_flight)


async def buffer_and_take(
    manual: StreamT[Any],
    buffered: MicroBatches[EventT[Any]],
    start: Callable[[list[EventT[Any]]], Awaitable[None]],
    in_flight: InFlight,
) -> None:
    """The agent's loop only buffers events; batches are taken and started beside it (each acks its own events
    when done). A stop gives the batches in flight STOP_GRACE_S; what is not done by then is not acked and is
    delivered again."""

    async def take_forever() -> None:
        while True:
            await start(await buffered.take())

    runner = asyncio.ensure_future(take_forever())
    try:
        async for event in manual.events():
            if runner.done():
                runner.result()  # the batch loop failed (a bug, as every stage retries): stop the agent
            await buffered.put(event)
    finally:
        runner.cancel()
        await in_flight.drain(STOP_GRACE_S)
