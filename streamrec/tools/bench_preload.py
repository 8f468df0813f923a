"""`streamrec bench --preload N`: each run's graph starts with N synthetic edges (synthetic_graph.py, written by
preload.py as `streamrec load` writes them), and the measured stream, still the real data set's events, is
remapped onto the preloaded ids, so that its events land on users and items with a month of history behind them
(docs/scaling.md, "A graph of millions of edges")."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .preload import load_graph
from .synthetic_graph import item_id, synthetic_edges, user_id

PREFIX = "preload-"


@dataclass(frozen=True)
class Preload:
    edges: int
    users: int
    items: int
    seed: int = 0
    days: float = 30.0

    @classmethod
    def of(cls, edges: int, users: int | None = None, items: int | None = None) -> "Preload":
        """N edges among N / 20 users and N / 100 items by default (as `streamrec load`)."""
        return cls(edges, users or max(edges // 20, 1), items or max(edges // 100, 1))

    @property
    def ready_timeout_s(self) -> float:
        """How long a worker may take to warm-start from the preloaded graph: 1.26M edges took ~55 s here."""
        return 90.0 + self.edges / 10_000


def load_before_run(settings, preload: Preload, first_event_ms: int) -> dict:
    """Writes the synthetic graph, its newest edge a second before the stream's first event; the load's figures."""
    from graph_store import GraphStore

    started = time.perf_counter()
    edges = synthetic_edges(
        preload.edges,
        users=preload.users,
        items=preload.items,
        seed=preload.seed,
        end_ms=first_event_ms - 1000,
        days=preload.days,
    )
    generate_s = time.perf_counter() - started

    async def load():
        async with GraphStore.from_settings(settings) as store:
            report = await load_graph(store, edges, PREFIX)
            return report, await store.size()

    report, size = asyncio.run(load())
    return {"generate_seconds": round(generate_s, 2), **report.to_dict(), "graph_size": size}


def remapped(columns: dict, preload: Preload) -> dict:
    """The events' users and items replaced by preloaded ones, by activity: the k-th most active user of the
    stream becomes the preloaded user of rank k (the synthetic graph's most active is rank 0), and so for items,
    wrapping past the preloaded populations."""
    return {
        **columns,
        "users": _by_rank(columns["users"], preload.users, user_id),
        "items": _by_rank(columns["items"], preload.items, item_id),
    }


def _by_rank(ids: list[str], population: int, name) -> list[str]:
    counts = Counter(ids)
    ranked = sorted(counts, key=lambda i: (-counts[i], i))
    target = {original: name(rank % population, PREFIX) for rank, original in enumerate(ranked)}
    return [target[i] for i in ids]


def store_bytes(folder: Path) -> int:
    """Bytes of the graph server's data folder (its store files and transaction logs)."""
    return sum(path.stat().st_size for path in (folder / "data").rglob("*") if path.is_file())
