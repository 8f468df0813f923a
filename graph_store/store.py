"""The system of record for the interaction graph, reached with the official neo4j driver (async)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, Iterable, Protocol, Sequence, TypeVar

from neo4j import AsyncGraphDatabase, Record, RoutingControl
from neo4j.exceptions import ConstraintError

from . import queries
from .errors import GraphUnavailable, classify, one_line
from .rows import (
    EdgeColumns,
    EdgeRow,
    Event,
    ItemLike,
    ItemTextRow,
    NeighbourRow,
    distinct_records,
    interaction_rows,
    item_rows,
    source_of,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class GraphSettings(Protocol):
    """What GraphStore.from_settings reads (streamrec/runtime/settings.py's Settings has it)."""

    @property
    def bolt_uri(self) -> str: ...
    @property
    def neo4j_user(self) -> str: ...
    @property
    def neo4j_password(self) -> str: ...
    @property
    def database(self) -> str | None: ...


@dataclass(frozen=True)
class UpsertResult(Generic[Event]):
    """Which events were new to the graph (a replay after a crash re-sends events already applied)."""

    fresh: list[Event]

    @property
    def events_applied(self) -> int:
        return len(self.fresh)


class GraphStore:
    """Batched, idempotent writes and bounded reads.

    Every write is ONE round trip (`UNWIND $rows ...`). Two writers MERGE-ing the same new key can collide on
    the uniqueness constraint on servers that do not serialise them (ArcadeDB); the whole batch is idempotent,
    so it is simply retried.
    """

    def __init__(
        self,
        uri: str,
        user: str,
        password: str,
        database: str | None,
        *,
        conflict_retries: int = 5,
        driver_retries: bool = True,
    ):
        """`driver_retries=False` leaves every retry to the caller (the worker's stage loop, which counts, logs
        and backs off); otherwise the driver retries transient errors itself for up to 30 s, unseen."""
        self.database = database
        self.conflict_retries = conflict_retries
        retries: dict[str, Any] = {} if driver_retries else {"max_transaction_retry_time": 0}
        # no server notifications: an empty graph answers every read with "property does not exist" warnings
        self.driver = AsyncGraphDatabase.driver(uri, auth=(user, password), notifications_min_severity="OFF", **retries)

    @classmethod
    def from_settings(cls, settings: GraphSettings, **options: Any) -> "GraphStore":
        return cls(settings.bolt_uri, settings.neo4j_user, settings.neo4j_password, settings.database, **options)

    async def close(self) -> None:
        await self.driver.close()

    async def __aenter__(self) -> "GraphStore":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self, query: str, write: bool = True, **params: Any) -> list[Record]:
        """The query's records; a failure as GraphUnavailable (try again later) or GraphRejected (never)."""
        routing = RoutingControl.WRITE if write else RoutingControl.READ
        for attempt in range(self.conflict_retries + 1):
            try:
                result = await self.driver.execute_query(query, params, database_=self.database, routing_=routing)
                return result.records
            except ConstraintError as error:  # two MERGEs of one new key collided (see the class's docstring)
                if attempt == self.conflict_retries:
                    raise GraphUnavailable(
                        f"write conflict on a new key, {attempt + 1} times: {one_line(error)}"
                    ) from error
            except Exception as error:
                raise classify(error) from error
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def ensure_schema(self) -> None:
        for statement in queries.CONSTRAINTS:
            await self._run(statement)

    async def upsert_interactions(self, events: Iterable[Event]) -> UpsertResult[Event]:
        distinct = distinct_records(events)  # a record's second copy in one write is never fresh
        rows = interaction_rows(distinct)
        if not rows:
            return UpsertResult([])
        records = await self._run(queries.UPSERT_INTERACTIONS, rows=rows)
        # only the rows whose first `replayed` events (in offset order) were applied before come back: on the
        # usual path (nothing replayed) the answer is empty instead of a record per row
        first_new: dict[tuple[str, str, str, str], float] = {}
        for record in records:
            row = rows[record["k"]]
            offsets, replayed = row["offsets"], record["replayed"]
            first_new[(row["user"], row["item"], row["type"], row["source"])] = (
                offsets[replayed] if replayed < len(offsets) else float("inf")
            )
        fresh = [e for e in distinct if e.offset >= first_new.get((e.user_id, e.item_id, e.type, source_of(e)), -1)]
        return UpsertResult(fresh)

    async def upsert_items(self, items: Iterable[ItemLike]) -> int:
        rows = item_rows(items)
        if not rows:
            return 0
        records = await self._run(queries.UPSERT_ITEMS, rows=rows)
        return int(records[0]["items"]) if records else 0

    async def recent_items_of_users(self, user_ids: Sequence[str], k: int) -> dict[str, list[NeighbourRow]]:
        records = await self._run(queries.RECENT_ITEMS_OF_USERS, write=False, ids=list(user_ids), k=k)
        return {r["id"]: list(r["recent"]) for r in records}

    async def recent_users_of_items(self, item_ids: Sequence[str], k: int) -> dict[str, list[NeighbourRow]]:
        records = await self._run(queries.RECENT_USERS_OF_ITEMS, write=False, ids=list(item_ids), k=k)
        return {r["id"]: list(r["recent"]) for r in records}

    async def edges_of_users(self, user_ids: Sequence[str]) -> list[EdgeRow]:
        records = await self._run(queries.EDGES_OF_USERS, write=False, ids=list(user_ids))
        return [_edge(row) for row in records[0]["rows"]] if records else []

    async def edge_pages(self, users_per_page: int = 5_000, in_flight: int = 2) -> AsyncIterator[EdgeColumns]:
        """Every interaction edge as (user, item, type, last_ts) columns, a page of users at a time (see
        _user_pages). Edges another tool wrote with other property types (a graph of record is shared) are left
        out, and counted in the log: one such edge must not keep every worker from starting."""
        left_out, total, example = 0, 0, None
        async for page in self._user_pages(self._edge_columns_of_users, users_per_page, in_flight):
            usable, bad = _usable_columns(page)
            if bad:
                left_out += bad
                example = example or _first_unusable(page)
            total += len(page)
            yield usable
        if left_out:
            log.warning(
                "left out %d of %d INTERACTED edges whose properties streamrec cannot read, e.g. %s",
                left_out,
                total,
                example,
            )

    async def all_edges(self, users_per_page: int = 5_000) -> list[EdgeRow]:
        """Every interaction edge with all its fields, oldest first, in one list (for tests and tools; the warm
        start reads edge_pages, whose memory stays a page)."""
        edges = [
            edge
            async for page in self._user_pages(self.edges_of_users, users_per_page)
            for edge in page
            if _usable(edge)
        ]
        edges.sort(key=lambda e: e["last_ts"])  # here, not on the server: a sort of every edge there held them all
        return edges

    async def _user_pages(
        self, read: Callable[[list[str]], Awaitable[T]], users_per_page: int, in_flight: int = 2
    ) -> AsyncIterator[T]:
        """read(ids) of a page of users at a time, in user-id order (keyset pagination: a page costs its own nodes
        and edges, and a reader holds `in_flight` pages, never the whole graph). The next pages are read while the
        caller works on this one: a graph server elsewhere and this process work at once."""
        after, exhausted = "", False
        reading: deque[asyncio.Task[T]] = deque()
        try:
            while True:
                while not exhausted and len(reading) < in_flight:
                    records = await self._run(queries.USER_IDS_AFTER, write=False, after=after, limit=users_per_page)
                    ids: list[str] = records[0]["ids"] if records else []
                    exhausted = not ids
                    if ids:
                        reading.append(asyncio.ensure_future(read(ids)))
                        after = ids[-1]
                if not reading:
                    return
                yield await reading.popleft()
        finally:
            for task in reading:  # a reader that stopped early leaves no query running
                task.cancel()

    async def _edge_columns_of_users(self, user_ids: list[str]) -> EdgeColumns:
        records = await self._run(queries.EDGE_COLUMNS_OF_USERS, write=False, ids=user_ids)
        if not records:
            return EdgeColumns([], [], [], [])
        r = records[0]
        return EdgeColumns(r["users"], r["items"], r["types"], r["last_ts"])

    async def items_with_text(self, items_per_page: int = 20_000) -> list[ItemTextRow]:
        """Every item that has a title, category or brand, read a page of items at a time."""
        items: list[ItemTextRow] = []
        after = ""
        while True:
            records = await self._run(queries.ITEMS_WITH_TEXT_AFTER, write=False, after=after, limit=items_per_page)
            if not records or records[0]["last"] is None:
                return items
            items += [_item_text(row) for row in records[0]["rows"]]
            after = records[0]["last"]

    async def size(self) -> dict[str, int]:
        records = await self._run(queries.GRAPH_SIZE, write=False)
        data = records[0].data()
        return {key: int(value or 0) for key, value in data.items()}

    async def existing_nodes(self, users: Sequence[str], items: Sequence[str]) -> tuple[int, int]:
        """How many of these user and item ids the graph holds (index lookups only)."""
        records = await self._run(queries.EXISTING_NODES, write=False, users=list(users), items=list(items))
        return int(records[0]["users"]), int(records[0]["items"])

    async def create_nodes(self, label: str, ids: Sequence[str]) -> None:
        """Bulk load: `label` ("User" or "Item") nodes that do not exist yet, in one transaction."""
        query = {"User": queries.CREATE_USERS, "Item": queries.CREATE_ITEMS}[label]
        await self._run(query, ids=list(ids))

    async def create_edges(self, rows: Sequence[Sequence[Any]]) -> None:
        """Bulk load: INTERACTED edges that do not exist yet, as [user, item, type, count, first_ts, last_ts]
        rows between existing nodes, in one transaction."""
        await self._run(queries.CREATE_EDGES, rows=list(rows))

    async def ensure_retention_index(self) -> None:
        """The index on the edges' last_ts that forget_before searches (created only where a retention is set:
        every upsert keeps it up to date)."""
        await self._run(queries.LAST_TS_INDEX)

    async def forget_before(self, cutoff: int, batch: int = 10_000) -> int:
        """Deletes every interaction edge whose newest event is before `cutoff` (epoch ms), `batch` edges per
        transaction, and the users left without edges; returns the edges deleted."""
        deleted = 0
        while True:
            records = await self._run(queries.FORGET_EDGES_BEFORE, cutoff=int(cutoff), limit=batch)
            done = int(records[0]["deleted"] or 0) if records else 0
            deleted += done
            if done < batch:
                return deleted

    async def delete_everything(self, batch: int = 5000) -> None:
        """Empties the graph in bounded transactions (for tests and the demo's fresh start)."""
        while True:
            records = await self._run(queries.DELETE_BATCH, limit=batch)
            if not records or records[0]["deleted"] == 0:
                return


def _edge(row: Sequence[Any]) -> EdgeRow:
    """A row of queries.EDGES_OF_USERS, its values as the graph holds them (checked by _usable)."""
    user, item, kind, count, first_ts, last_ts = row  # queries.EDGE_FIELDS
    return {"user": user, "item": item, "type": kind, "count": count, "first_ts": first_ts, "last_ts": last_ts}


def _item_text(row: Sequence[Any]) -> ItemTextRow:
    """A row of queries.ITEMS_WITH_TEXT_AFTER."""
    item_id, title, category, brand = row  # queries.ITEM_FIELDS
    return {"id": item_id, "title": title, "category": category, "brand": brand}


def _usable_columns(page: EdgeColumns) -> tuple[EdgeColumns, int]:
    """The page without its unreadable edges (ids and type not strings, last_ts not an integer; a boolean is not
    one), and how many those were. One pass per column, no object per edge."""
    columns = (page.users, page.items, page.types)
    if all(all(type(v) is str for v in column) for column in columns) and all(type(t) is int for t in page.last_ts):
        return page, 0
    keep = [
        k
        for k in range(len(page))
        if all(type(column[k]) is str for column in columns) and type(page.last_ts[k]) is int
    ]
    kept = EdgeColumns(
        [page.users[k] for k in keep],
        [page.items[k] for k in keep],
        [page.types[k] for k in keep],
        [page.last_ts[k] for k in keep],
    )
    return kept, len(page) - len(keep)


def _first_unusable(page: EdgeColumns) -> dict[str, object]:
    rows = zip(page.users, page.items, page.types, page.last_ts)
    return next(
        {"user": u, "item": i, "type": t, "last_ts": ts}
        for u, i, t, ts in rows
        if not (type(u) is str and type(i) is str and type(t) is str and type(ts) is int)
    )


def _usable(edge: EdgeRow) -> bool:
    """Ids and type are strings; count, first_ts and last_ts integers (a boolean is not one)."""
    texts: tuple[object, ...] = (edge["user"], edge["item"], edge["type"])
    numbers: tuple[object, ...] = (edge["count"], edge["first_ts"], edge["last_ts"])
    return all(isinstance(value, str) for value in texts) and all(
        isinstance(value, int) and not isinstance(value, bool) for value in numbers
    )
