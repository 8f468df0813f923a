"""What the worker writes to Kafka: the lists and the dead letters, each send waited on until the broker acks it."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Iterable, Protocol, Sequence

from . import metrics
from .dead_letters import dead_letter_headers, dead_letter_value
from .events import Rejection
from .records import Delivered
from .topics import TopicNames

Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes, Headers | None]  # key, value, headers


class Producer(Protocol):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> Awaitable[Any]:
        """Hands the record to the client; what it returns completes when the broker acks the record."""


class KafkaOut:
    def __init__(self, producer: Producer, names: TopicNames):
        self.producer = producer
        self.names = names

    async def send_all(self, topic: str, records: Iterable[Record]) -> None:
        """Hands every record to the producer, then waits for all the broker's acks. The producer is called
        directly: a Faust topic's send() adds per-message bookkeeping that cost about 1 ms each."""
        futures = [await self.producer.send(topic, key, value, None, None, headers) for key, value, headers in records]
        await asyncio.gather(*futures)

    async def lists(self, lists: Sequence[tuple[str, bytes]]) -> None:
        await self.send_all(self.names.recommendations, [(user.encode(), value, None) for user, value in lists])

    async def dead_letters(self, rejected: Sequence[tuple[Delivered, Rejection]]) -> None:
        """`rejected`: (Faust event, why); each dead letter carries the record's position and a capped copy."""
        records: list[Record] = []
        for event, rejection in rejected:
            message = event.message
            records.append(
                (
                    message.key,
                    dead_letter_value(
                        rejection,
                        message.value,
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key,
                    ),
                    dead_letter_headers(rejection),
                )
            )
        await self.send_all(self.names.dead_letters, records)
        for _, rejection in rejected:
            metrics.DEAD_LETTERS.labels(rejection.reason).inc()
