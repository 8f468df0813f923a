"""The event schema every layer shares: what an interaction and an item record are, the event types and the
exclusion policies of a list. Declared once here, where the stream layer (stream/, which parses and validates
the topics' records: stream/events.py), the graph store (graph_store/) and the models (model_server/) all import
it; it imports nothing of the project, so none of them depends on another through it
(tests/streamrec/test_schema.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENT_TYPES = ("click", "view", "add_to_cart", "purchase")
# what a list leaves out of a user's own items: nothing, what the user bought, everything the user touched
EXCLUDE_POLICIES = ("none", "purchased", "seen")


@dataclass(frozen=True)
class Interaction:
    event_id: str
    user_id: str
    item_id: str
    type: str
    ts: int
    props: dict[str, Any] | None = None
    # where the record came from: the idempotence key of the graph upsert
    topic: str = ""
    partition: int = -1
    offset: int = -1
    kafka_ts: float = 0.0  # seconds, the record's Kafka timestamp (freshness starts here)


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
