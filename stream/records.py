"""What the stream layer reads of a consumed record: Faust's event and the Kafka message it carries, as protocols
(faust.types.EventT and faust.types.tuples.Message have these attributes; the tests hand in plain objects)."""

from __future__ import annotations

from typing import Hashable, Protocol


class Message(Protocol):
    """A consumed Kafka record."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> float: ...  # seconds
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def tp(self) -> Hashable: ...  # (topic, partition)


class Delivered(Protocol):
    """A Faust event: what an agent's stream yields and acks."""

    @property
    def message(self) -> Message: ...
