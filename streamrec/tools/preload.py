"""Writes a synthetic graph (synthetic_graph.py) into the graph of record in large transactions: the starting
state of the scale runs (`streamrec load`, docs/scaling.md). Workers started afterwards read it as their warm
start, as they would read a graph that grew over months."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np

from graph_store import GraphStore

from ..schema import EVENT_TYPES
from .synthetic_graph import DEFAULT_PREFIX, SyntheticEdges, item_id, user_id

# Measured on this 2-core machine at 200k edges (other work running): 20,000 rows one at a time 25k edges/s,
# 5,000 rows two at a time 41k, three at a time 39k: smaller transactions in flight together keep the server's
# cores busy while the client packs the next rows.
DEFAULT_ROWS_PER_TRANSACTION = 5_000
DEFAULT_TRANSACTIONS_IN_FLIGHT = 2


class NodesExist(Exception):
    """The load writes with CREATE (no lookup per edge): right only for nodes not there yet, and so for their edges."""


@dataclass(frozen=True)
class LoadReport:
    users: int
    items: int
    edges: int
    node_seconds: float
    edge_seconds: float

    @property
    def edges_per_second(self) -> float:
        return self.edges / self.edge_seconds if self.edge_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "edges_per_second": round(self.edges_per_second, 1)}


async def load_graph(
    store: GraphStore,
    edges: SyntheticEdges,
    prefix: str = DEFAULT_PREFIX,
    rows_per_transaction: int = DEFAULT_ROWS_PER_TRANSACTION,
    progress: Callable[[int], None] | None = None,
    in_flight: int = DEFAULT_TRANSACTIONS_IN_FLIGHT,
) -> LoadReport:
    """Writes the edges' users and items (ids `prefix`user-N, `prefix`item-N), then the edges; `progress` gets each
    transaction's edge count. Nothing is written when any of the nodes exists already."""
    await store.ensure_schema()
    users = [user_id(int(rank), prefix) for rank in np.unique(edges.users)]
    items = [item_id(int(rank), prefix) for rank in np.unique(edges.items)]
    existing_users, existing_items = await store.existing_nodes(users, items)
    if existing_users or existing_items:
        raise NodesExist(
            f"the graph already holds {existing_users} of these users and {existing_items} of these items: load "
            "with another --prefix, or into an empty graph"
        )
    started = time.perf_counter()
    for label, ids in (("User", users), ("Item", items)):
        for start in range(0, len(ids), rows_per_transaction):
            await store.create_nodes(label, ids[start : start + rows_per_transaction])
    node_seconds = time.perf_counter() - started
    started = time.perf_counter()
    writing: set[asyncio.Future[None]] = set()
    for rows in edge_rows(edges, prefix, rows_per_transaction):  # rows are built only when there is room
        if len(writing) >= in_flight:
            done, writing = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            for write in done:
                write.result()  # (a failed transaction stops the load)
        # edges of one hub in two transactions may deadlock: the driver retries the one it aborts
        writing.add(asyncio.ensure_future(store.create_edges(rows)))
        if progress is not None:
            progress(len(rows))
    await asyncio.gather(*writing)
    return LoadReport(len(users), len(items), len(edges), node_seconds, time.perf_counter() - started)


def edge_rows(edges: SyntheticEdges, prefix: str, size: int) -> Iterator[list[list[Any]]]:
    """[user, item, type, count, first_ts, last_ts] rows (plain Python values), `size` at a time."""
    for start in range(0, len(edges), size):
        part = slice(start, start + size)
        columns = (
            [user_id(rank, prefix) for rank in edges.users[part].tolist()],
            [item_id(rank, prefix) for rank in edges.items[part].tolist()],
            [EVENT_TYPES[kind] for kind in edges.types[part].tolist()],
            edges.count[part].tolist(),
            edges.first_ts[part].tolist(),
            edges.last_ts[part].tolist(),
        )
        yield [list(row) for row in zip(*columns)]
