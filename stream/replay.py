"""Replays a data set as live events: item records first, then interactions in time order, at a target rate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

from .events import Item, interaction_value, item_value
from .topics import TopicNames

if TYPE_CHECKING:
    from kafka import KafkaProducer


class Progress(Protocol):
    """A progress bar (tqdm's): told how many more events were sent."""

    def update(self, n: int) -> object: ...


@dataclass
class ReplayStats:
    items_sent: int = 0
    events_sent: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events_sent / self.seconds if self.seconds else 0.0


def make_producer(bootstrap: str, **client_options: Any) -> KafkaProducer:
    from kafka import KafkaProducer

    # acks=all: a replayed event counts as sent only once the broker has it
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=1,
        **client_options,
    )


def replay(
    producer: KafkaProducer,
    names: TopicNames,
    *,
    event_ids: Sequence[str],
    users: Sequence[str],
    items: Sequence[str],
    types: Sequence[str],
    ts: Sequence[int],
    item_records: Iterable[Item] = (),
    rate: float | None = None,
    progress: Progress | None = None,
    sent_times: list[float] | None = None,
) -> ReplayStats:
    """Sends the items, flushes, then the interactions (key = user id) at `rate` events/s (None: as fast as possible).
    `sent_times`, when given, receives the wall-clock time each event was handed to the producer."""
    stats = ReplayStats()
    started = time.perf_counter()
    for item in item_records:
        producer.send(names.items, key=item.item_id.encode(), value=item_value(item))
        stats.items_sent += 1
    producer.flush()
    # one in-flight request per connection keeps each user's events in order on their partition
    for k in range(len(users)):
        if rate:
            lag = started + k / rate - time.perf_counter()
            if lag > 0:
                time.sleep(lag)
        producer.send(
            names.interactions,
            key=users[k].encode(),
            value=interaction_value(event_ids[k], users[k], items[k], types[k], ts[k]),
        )
        if sent_times is not None:
            sent_times.append(time.time())
        stats.events_sent += 1
        if progress is not None and k % 500 == 499:
            progress.update(500)
    producer.flush()
    if progress is not None:
        progress.update(stats.events_sent % 500)
    stats.seconds = time.perf_counter() - started
    return stats
