"""The system of record for the interaction graph, reached with the official neo4j driver (async)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from neo4j import AsyncGraphDatabase, RoutingControl
from neo4j.exceptions import ConstraintError

from . import queries
from .errors import GraphUnavailable, classify, one_line
from .rows import distinct_records, interaction_rows, item_rows, source_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpsertResult:
    """Which events were new to the graph (a replay after a crash re-sends events already applied)."""

    fresh: list

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
        # no server notifications: an empty graph answers every read with "property does not exist" warnings
        self.driver = AsyncGraphDatabase.driver(
            uri,
            auth=(user, password),
            notifications_min_severity="OFF",
            **({} if driver_retries else {"max_transaction_retry_time": 0}),
        )

    @classmethod
    def from_settings(cls, settings, **options) -> "GraphStore":
        return cls(settings.bolt_uri, settings.neo4j_user, settings.neo4j_password, settings.database, **options)

    async def close(self) -> None:
        await self.driver.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _run(self, query: str, write: bool = True, **params):
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

    async def ensure_schema(self) -> None:
        for statement in queries.CONSTRAINTS:
            await self._run(statement)

    async def upsert_interactions(self, events) -> UpsertResult:
        events = distinct_records(events)  # a record's second copy in one write is never fresh
        rows = interaction_rows(events)
        if not rows:
            return UpsertResult([])
        records = await self._run(queries.UPSERT_INTERACTIONS, rows=rows)
        # only the rows whose first `replayed` events (in offset order) were applied before come back: on the
        # usual path (nothing replayed) the answer is empty instead of a record per row
        first_new = {}
        for record in records:
            row = rows[record["k"]]
            offsets, replayed = row["offsets"], record["replayed"]
            first_new[(row["user"], row["item"], row["type"], row["source"])] = (
                offsets[replayed] if replayed < len(offsets) else float("inf")
            )
        fresh = [e for e in events if e.offset >= first_new.get((e.user_id, e.item_id, e.type, source_of(e)), -1)]
        return UpsertResult(fresh)

    async def upsert_items(self, items) -> int:
        rows = item_rows(items)
        if not rows:
            return 0
        records = await self._run(queries.UPSERT_ITEMS, rows=rows)
        return int(records[0]["items"]) if records else 0

    async def recent_items_of_users(self, user_ids: list[str], k: int) -> dict[str, list[dict]]:
        records = await self._run(queries.RECENT_ITEMS_OF_USERS, write=False, ids=list(user_ids), k=k)
        return {r["id"]: list(r["recent"]) for r in records}

    async def recent_users_of_items(self, item_ids: list[str], k: int) -> dict[str, list[dict]]:
        records = await self._run(queries.RECENT_USERS_OF_ITEMS, write=False, ids=list(item_ids), k=k)
        return {r["id"]: list(r["recent"]) for r in records}

    async def edges_of_users(self, user_ids: list[str]) -> list[dict]:
        records = await self._run(queries.EDGES_OF_USERS, write=False, ids=list(user_ids))
        return [dict(zip(queries.EDGE_FIELDS, row)) for row in records[0]["rows"]] if records else []

    async def all_edges(self, users_per_page: int = 5_000) -> list[dict]:
        """Every interaction edge oldest first: the warm start of the in-memory model state, read a page of users
        at a time. Edges another tool wrote with other property types (a graph of record is shared) are left
        out, and counted in the log: one such edge must not keep every worker from starting."""
        edges, after = [], ""
        while True:
            records = await self._run(queries.USER_IDS_AFTER, write=False, after=after, limit=users_per_page)
            ids = records[0]["ids"] if records else []
            if not ids:
                break
            edges += await self.edges_of_users(ids)
            after = ids[-1]
        usable = [e for e in edges if _usable(e)]
        if len(usable) < len(edges):
            example = next(e for e in edges if not _usable(e))
            log.warning(
                "left out %d of %d INTERACTED edges whose properties streamrec cannot read, e.g. %s",
                len(edges) - len(usable),
                len(edges),
                example,
            )
        usable.sort(key=lambda e: e["last_ts"])  # here, not on the server: a sort of every edge there held them all
        return usable

    async def items_with_text(self, items_per_page: int = 20_000) -> list[dict]:
        """Every item that has a title, category or brand, read a page of items at a time."""
        items, after = [], ""
        while True:
            records = await self._run(queries.ITEMS_WITH_TEXT_AFTER, write=False, after=after, limit=items_per_page)
            if not records or records[0]["last"] is None:
                return items
            items += [dict(zip(queries.ITEM_FIELDS, row)) for row in records[0]["rows"]]
            after = records[0]["last"]

    async def size(self) -> dict:
        records = await self._run(queries.GRAPH_SIZE, write=False)
        data = records[0].data()
        return {key: int(value or 0) for key, value in data.items()}

    async def delete_everything(self, batch: int = 5000) -> None:
        """Empties the graph in bounded transactions (for tests and the demo's fresh start)."""
        while True:
            records = await self._run(queries.DELETE_BATCH, limit=batch)
            if not records or records[0]["deleted"] == 0:
                return


def _usable(edge: dict) -> bool:
    """Ids and type are strings; count, first_ts and last_ts integers (a boolean is not one)."""
    return all(isinstance(edge[key], str) for key in ("user", "item", "type")) and all(
        isinstance(edge[key], int) and not isinstance(edge[key], bool) for key in ("count", "first_ts", "last_ts")
    )
