"""The composition point of the worker: the stream layer's batches go to the graph store and the model server."""
from __future__ import annotations

import asyncio
import logging
import time

from graph_store import GraphStore
from model_server.contract import InteractionBatch, ItemText, Recommender
from stream import metrics
from stream.events import Interaction, Item, recommendation_record
from stream.topics import TopicNames, ensure_topics

log = logging.getLogger(__name__)


def load_recommender(settings) -> Recommender:
    """The serving model. Until a temporal GAT checkpoint exists this is the co-occurrence baseline."""
    from model_server.baselines.cooccurrence import ItemCooccurrence

    model = ItemCooccurrence()
    log.info("serving the %s baseline (version %s): no model checkpoint in %s", model.name, model.version(),
             settings.model_dir)
    return model


class Pipeline:
    """What the worker does with a valid micro-batch (stream.app.BatchHandler)."""

    def __init__(self, settings, recommender: Recommender):
        self.settings = settings
        self.model = recommender
        self._store: GraphStore | None = None
        self._started = asyncio.Lock()
        self._warm = False

    async def store(self) -> GraphStore:
        # created on first use: the async driver belongs to the event loop Faust runs
        if self._store is None:
            self._store = GraphStore.from_settings(self.settings)
        return self._store

    async def start(self) -> None:
        """Schema first (key constraints before any MERGE), then the model's state from the graph of record."""
        async with self._started:
            if self._warm:
                return
            store = await self.store()
            await store.ensure_schema()
            started = time.perf_counter()
            edges = await store.all_edges()
            if edges:
                self.model.observe(InteractionBatch([e["user"] for e in edges], [e["item"] for e in edges],
                                                    [e["type"] for e in edges], [int(e["last_ts"]) for e in edges]))
            log.info("warm start: %d edges from the graph store in %.2f s", len(edges), time.perf_counter() - started)
            self._warm = True

    async def upsert_interactions(self, events: list[Interaction]) -> list[Interaction]:
        await self.start()
        result = await (await self.store()).upsert_interactions(events)
        return result.fresh

    async def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> list[tuple[str, bytes]]:
        if fresh:
            self.model.observe(InteractionBatch.from_events(fresh))
        last_event: dict[str, Interaction] = {}
        for event in events:  # in offset order per user, so the last one wins
            last_event[event.user_id] = event
        users = list(last_event)
        lists = self.model.recommend(users, self.settings.top_k, exclude=self.settings.exclude)
        now_ms = int(time.time() * 1000)
        model, version = self.model.name, self.model.version()
        metrics.LISTS_PUBLISHED.labels(model).inc(len(users))
        return [(user, recommendation_record(user, items, model=model, model_version=version,
                                             last_event=last_event[user], published_ts=now_ms))
                for user, items in zip(users, lists)]

    async def upsert_items(self, items: list[Item]) -> None:
        await self.start()
        await (await self.store()).upsert_items(items)
        self.model.observe_items([ItemText(i.item_id, i.title, i.category, i.brand) for i in items])


def run_worker(settings) -> int:
    import faust

    from stream.app import create_app

    from .health import Health

    names = TopicNames.with_prefix(settings.topic_prefix)
    ensure_topics(settings.bootstrap, names, settings.partitions, **settings.kafka_client_options())
    model = load_recommender(settings)
    metrics.MODEL_INFO.labels(model.name, model.version()).set(1)
    health = Health(settings)
    health.serve(settings.metrics_host, settings.metrics_port)
    app = create_app(settings, Pipeline(settings, model), names, on_tick=health.tick)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
