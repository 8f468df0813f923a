"""The batch processing of the agents (stream/processing.py) with a stand-in handler and producer: pure logic,
no Kafka (tests/e2e runs the same code on the real servers)."""

import asyncio
import json
from dataclasses import dataclass, field

import orjson

from stream.events import Item, interaction_value, item_value
from stream.kafka_out import KafkaOut
from stream.processing import InteractionBatches, Origins, consumer_lag, interaction_of, process_items
from stream.retries import Isolated, RecordsRejected
from stream.topics import TopicNames

NAMES = TopicNames.with_prefix("t-")
TS = 1_700_000_000_000


@dataclass
class Message:
    value: bytes
    offset: int
    partition: int = 0
    topic: str = "t-interactions"
    key: bytes | None = None
    timestamp: float = TS / 1000

    @property
    def tp(self):
        return (self.topic, self.partition)


@dataclass
class Event:
    message: Message


def interactions(*rows: tuple[str, str] | bytes, start: int = 0) -> list[Event]:
    """Events of (user, item) pairs, or raw bytes for a malformed record."""
    events = []
    for k, row in enumerate(rows):
        value = row if isinstance(row, bytes) else interaction_value(f"e{start + k}", row[0], row[1], "view", TS + k)
        events.append(Event(Message(value, start + k)))
    return events


class Producer:
    """Records every send; each is acknowledged at once, or with `holding` only when released."""

    def __init__(self, holding: bool = False):
        self.sent: list[tuple[str, bytes, bytes, list | None]] = []
        self.holding = holding
        self.held: list[asyncio.Future] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, headers))
        future = asyncio.get_running_loop().create_future()
        if self.holding:
            self.held.append(future)
        else:
            future.set_result(None)
        return future

    def release(self) -> None:
        for future in self.held:
            future.set_result(None)

    def to(self, topic: str) -> list:
        return [record for record in self.sent if record[0] == topic]


@dataclass
class Handler:
    refresh_is_idempotent: bool = True
    replayed: set = field(default_factory=set)  # event ids the graph has already applied
    refused: set = field(default_factory=set)  # event ids the graph refuses for good
    upserts: list = field(default_factory=list)
    refreshes: list = field(default_factory=list)
    items: list = field(default_factory=list)
    upsert_gate: asyncio.Event | None = None

    async def start(self):
        pass

    async def upsert_interactions(self, events):
        if self.upsert_gate is not None:
            await self.upsert_gate.wait()
        if any(e.event_id in self.refused for e in events):
            raise RecordsRejected("Neo.ClientError.Statement.TypeError: refused")
        self.upserts.append([e.event_id for e in events])
        return [e for e in events if e.event_id not in self.replayed]

    async def refresh(self, events, fresh):
        self.refreshes.append(([e.event_id for e in events], [e.event_id for e in fresh]))
        return [(e.user_id, orjson.dumps({"user_id": e.user_id, "last": e.event_id})) for e in events]

    async def upsert_items(self, items):
        if any(i.item_id in self.refused for i in items):
            raise RecordsRejected("refused")
        self.items.extend(i.item_id for i in items)

    async def periodic(self):
        pass


def run_batches(handler: Handler, *batches: list[Event], producer: Producer | None = None):
    producer = producer or Producer()
    processing = InteractionBatches(handler, KafkaOut(producer, NAMES))
    acked: list[int] = []

    async def ack(event):
        acked.append(event.message.offset)

    async def scenario():
        for batch in batches:
            await processing.process(batch, ack)
        await processing.in_flight.drain(10)

    asyncio.run(scenario())
    return processing, producer, acked


def test_valid_events_are_written_refreshed_published_then_acked_and_invalid_ones_dead_lettered():
    handler = Handler()
    batch = interactions(("u1", "i1"), b"{not json", ("u2", "i1"), ("u1", "i2"))
    processing, producer, acked = run_batches(handler, batch)
    assert handler.upserts == [["e0", "e2", "e3"]]
    assert handler.refreshes == [(["e0", "e2", "e3"], ["e0", "e2", "e3"])]
    lists = producer.to(NAMES.recommendations)
    assert [(key, json.loads(value)["last"]) for _, key, value, _ in lists] == [
        (b"u1", "e0"),
        (b"u2", "e2"),
        (b"u1", "e3"),
    ]
    [(topic, _, value, headers)] = producer.to(NAMES.dead_letters)
    assert json.loads(value)["reason"] == "not_json" and json.loads(value)["source"]["offset"] == 1
    assert headers == [("streamrec-reason", b"not_json")]
    assert acked == [0, 1, 2, 3] and processing.next_offsets == {("t-interactions", 0): 4}
    assert len(processing.origins) == 0  # nothing kept once the batch is done


def test_a_counting_model_sees_only_the_events_new_to_the_graph():
    handler = Handler(refresh_is_idempotent=False, replayed={"e0", "e1"})
    run_batches(handler, interactions(("u1", "i1"), ("u1", "i2"), ("u2", "i3")))
    assert handler.refreshes == [(["e0", "e1", "e2"], ["e2"])]  # lists for every user, the model fed once


def test_an_idempotent_model_is_refreshed_before_the_graph_write_is_done():
    async def scenario():
        handler = Handler(upsert_gate=asyncio.Event())
        processing = InteractionBatches(handler, KafkaOut(Producer(), NAMES))
        acked = []

        async def ack(event):
            acked.append(event.message.offset)

        await processing.process(interactions(("u1", "i1")), ack)
        refreshed_while_writing, acked_while_writing = list(handler.refreshes), list(acked)
        handler.upsert_gate.set()
        await processing.in_flight.drain(10)
        return refreshed_while_writing, acked_while_writing, acked

    refreshed, acked_early, acked = asyncio.run(scenario())
    assert refreshed == [(["e0"], ["e0"])] and acked_early == [] and acked == [0]


def test_no_event_is_acked_before_the_broker_acknowledged_its_list():
    async def scenario():
        producer = Producer(holding=True)
        processing = InteractionBatches(Handler(), KafkaOut(producer, NAMES))
        acked = []

        async def ack(event):
            acked.append(event.message.offset)

        await processing.process(interactions(("u1", "i1"), ("u2", "i2")), ack)
        await asyncio.sleep(0.05)
        before = list(acked)
        producer.release()
        await processing.in_flight.drain(10)
        return before, acked

    before, after = asyncio.run(scenario())
    assert before == [] and after == [0, 1]


def test_a_record_the_graph_refuses_for_good_is_dead_lettered_and_the_rest_applied_in_order():
    handler = Handler(refused={"e2"})
    processing, producer, acked = run_batches(
        handler, interactions(("u1", "i1"), ("u1", "i2"), ("u2", "i3"), ("u3", "i1"))
    )
    applied = [event for upsert in handler.upserts for event in upsert]
    assert applied == ["e0", "e1", "e3"]
    [(_, _, value, headers)] = producer.to(NAMES.dead_letters)
    letter = json.loads(value)
    assert (letter["reason"], letter["source"]["offset"]) == ("graph_rejected", 2) and "refused" in letter["detail"]
    assert acked == [0, 1, 2, 3]


def test_items_are_written_and_a_bad_or_refused_item_goes_to_the_dead_letters():
    producer, handler = Producer(), Handler(refused={"bad"})
    batch = [
        Event(Message(item_value(Item(item_id, "a title")), k, topic="t-items"))
        for k, item_id in enumerate(["i1", "bad", "i2"])
    ] + [Event(Message(b"[]", 3, topic="t-items"))]
    asyncio.run(process_items(handler, KafkaOut(producer, NAMES), batch))
    assert handler.items == ["i1", "i2"]
    reasons = sorted(json.loads(value)["reason"] for _, _, value, _ in producer.to(NAMES.dead_letters))
    assert reasons == ["graph_rejected", "not_object"]


def test_origins_map_refused_records_back_to_their_events():
    origins = Origins()
    batch = interactions(("u1", "i1"), b"x", ("u2", "i2"))
    valid, rejected = origins.parse(batch, interaction_of)
    assert [e.event_id for e in valid] == ["e0", "e2"] and [event.message.offset for event, _ in rejected] == [1]
    [(event, rejection)] = origins.refused("graph_upsert", Isolated([], [(valid[1], "no")]))
    assert event is batch[2] and (rejection.reason, rejection.detail) == ("graph_rejected", "no")
    origins.forget(valid)
    assert len(origins) == 0


def test_consumer_lag_is_unknown_until_both_ends_are_known():
    assert consumer_lag(None, 3) is None and consumer_lag(10, None) is None and consumer_lag(-1, 0) is None
    assert consumer_lag(10, 4) == 6 and consumer_lag(4, 10) == 0
