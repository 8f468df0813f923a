"""Turns a micro-batch of events into the parameter rows of one UNWIND…MERGE round trip.

Idempotence under replay: every edge (user, item, type) remembers the last Kafka position it applied: its
source "topic/partition" and offset. Kafka is keyed by user, so all events of an edge arrive in offset order on one partition; a row
therefore carries its events' offsets in ascending order, and the Cypher applies only the suffix that is
newer than the stored offset. `ts_min_from[k]` / `ts_max_from[k]` are the min/max event time of events
k..end, so the query can fold that suffix into first_ts/last_ts without iterating.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Protocol, TypedDict, TypeVar


class EventLike(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def item_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def ts(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class ItemLike(Protocol):
    @property
    def item_id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def category(self) -> str | None: ...
    @property
    def brand(self) -> str | None: ...
    @property
    def price(self) -> float | None: ...


Event = TypeVar("Event", bound=EventLike)


# -- the parameter rows of the writes (queries.UPSERT_INTERACTIONS, queries.UPSERT_ITEMS) ---------------------
class InteractionRow(TypedDict):
    """One edge (user, item, type) and source: its events' offsets in ascending order, with the suffix extrema."""

    k: int  # the row's index in its write: the query returns it for the rows that held replayed events
    user: str
    item: str
    type: str
    source: str  # "topic/partition"
    offsets: list[int]
    ts_min_from: list[int]
    ts_max_from: list[int]


class ItemRow(TypedDict):
    id: str
    title: str | None
    category: str | None
    brand: str | None
    price: float | None


# -- the rows the reads return (GraphStore.all_edges, items_with_text, recent_*_of_*) --------------------------
class EdgeRow(TypedDict):
    """An INTERACTED edge as the warm start reads it (queries.EDGE_FIELDS); times in epoch milliseconds. Another
    tool may have written other property types: GraphStore.all_edges leaves those edges out."""

    user: str
    item: str
    type: str
    count: int
    first_ts: int
    last_ts: int


@dataclass(frozen=True)
class EdgeColumns:
    """A page of the warm start's edges as columns (GraphStore.edge_pages): one entry per INTERACTED edge, the
    four fields a model's state is made of (no dict per edge: at 10M edges that cost was most of the read)."""

    users: list[str]
    items: list[str]
    types: list[str]
    last_ts: list[int]

    def __len__(self) -> int:
        return len(self.users)


class ItemTextRow(TypedDict):
    """An item with a title, category or brand (queries.ITEM_FIELDS)."""

    id: str
    title: str | None
    category: str | None
    brand: str | None


class NeighbourRow(TypedDict):
    """One of a node's most recent neighbours (queries.RECENT_ITEMS_OF_USERS, RECENT_USERS_OF_ITEMS)."""

    id: str
    type: str
    ts: int
    count: int


def _suffix_extrema(values: list[int]) -> tuple[list[int], list[int]]:
    lows, highs = list(values), list(values)
    for k in range(len(values) - 2, -1, -1):
        lows[k] = min(lows[k], lows[k + 1])
        highs[k] = max(highs[k], highs[k + 1])
    return lows, highs


def source_of(event: EventLike) -> str:
    """Offsets are only comparable within one partition of one topic."""
    return f"{event.topic}/{event.partition}"


def distinct_records(events: Iterable[Event]) -> list[Event]:
    """The first event of each Kafka record (source, offset). One write may hold a record twice: after a
    rebalance a partition is fetched again from its committed offset while the first copy still waits for the
    graph (batches coalesce while a write runs); counted per offset, the record was applied twice."""
    seen: set[tuple[str, int]] = set()
    distinct: list[Event] = []
    for event in events:
        record = (source_of(event), event.offset)
        if record not in seen:
            seen.add(record)
            distinct.append(event)
    return distinct


def interaction_rows(events: Iterable[EventLike]) -> list[InteractionRow]:
    """One row per edge and source; each Kafka record once."""
    grouped: dict[tuple[str, str, str, str], list[EventLike]] = defaultdict(list)
    for event in distinct_records(events):
        grouped[(event.item_id, event.user_id, event.type, source_of(event))].append(event)
    rows: list[InteractionRow] = []
    # in item order: workers write different users but share items, and MERGE locks each item node (its index
    # entry when it is new) in row order; one order for every writer leaves no cycle to deadlock on (Neo4j
    # detected such deadlocks between three workers; they are retried, but cost a back-off each)
    for (item, user, event_type, source), group in sorted(grouped.items(), key=lambda entry: entry[0]):
        group.sort(key=lambda e: e.offset)
        ts = [e.ts for e in group]
        lows, highs = _suffix_extrema(ts)
        rows.append(
            {
                "k": len(rows),  # the query returns this index, not the row's strings: less to send back and decode
                "user": user,
                "item": item,
                "type": event_type,
                "source": source,
                "offsets": [e.offset for e in group],
                "ts_min_from": lows,
                "ts_max_from": highs,
            }
        )
    return rows


def item_rows(items: Iterable[ItemLike]) -> list[ItemRow]:
    """Last record per item wins (items are keyed by item_id, later records replace earlier ones)."""
    latest: dict[str, ItemRow] = {}
    for item in items:
        latest[item.item_id] = {
            "id": item.item_id,
            "title": item.title,
            "category": item.category,
            "brand": item.brand,
            "price": item.price,
        }
    return list(latest.values())
