"""The composition point of the worker: the stream layer's batches go to the graph store and the model server."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from graph_store import GraphStore
from model_server.contract import InteractionBatch, ItemText, Recommender
from stream import metrics
from stream.events import Interaction, Item, recommendation_record
from stream.topics import TopicNames, ensure_topics

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "model.pt"
MAX_FANOUT = 512  # nodes re-embedded per micro-batch beyond its endpoints
SWEEP_NODES_PER_TICK = 2_048  # stale nodes refreshed per 1 s tick, between batches


def newest_checkpoint(model_dir: Path) -> Path | None:
    """The most recently written checkpoint under STREAMREC_MODEL_DIR (one folder per training run)."""
    candidates = [p for p in Path(model_dir).glob(f"**/{CHECKPOINT_FILE}") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def load_recommender(settings, checkpoint: Path | None) -> Recommender:
    """The temporal GAT from a checkpoint; the co-occurrence baseline when there is none."""
    if checkpoint is None:
        from model_server.baselines.cooccurrence import ItemCooccurrence

        model = ItemCooccurrence()
        log.warning("serving the %s baseline (version %s): no model checkpoint under %s",
                    model.name, model.version(), settings.model_dir)
        return model
    from model_server.tgat import load_recommender as load_tgat

    # The hot path re-embeds only a bounded affected set (the batch's endpoints and up to MAX_FANOUT nodes
    # that sample them); the rest is marked stale and swept in the background. The batch's users are always
    # exact; other users' and items' embeddings may lag by at most one sweep (streamrec_stale_nodes).
    model = load_tgat(checkpoint, device="auto", auto_refresh=True, sweep_per_observe=0, max_fanout=MAX_FANOUT,
                      exact_items=False)
    log.info("serving the temporal GAT %s from %s on %s", model.version(), checkpoint, model.device)
    return model


def freeze_heap() -> None:
    """Puts everything alive now (the model's state, the id maps, the libraries) out of the garbage collector's
    reach. Otherwise its full collections, triggered by the many small objects each batch allocates (list
    records), walk that whole heap: measured 80 -> 41 ms to rank a 470-event REES46 batch. Unfrozen and
    collected first, so a swapped-out model's reference cycles are freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _edges_batch(edges: list[dict]) -> InteractionBatch:
    return InteractionBatch([e["user"] for e in edges], [e["item"] for e in edges], [e["type"] for e in edges],
                            [int(e["last_ts"]) for e in edges])


def warm_start(model: Recommender, edges: list[dict], items: list[dict]) -> None:
    """The model's state from the graph of record: item text first, then the interaction edges."""
    if items:
        model.observe_items([ItemText(i["id"], i["title"], i["category"], i["brand"]) for i in items])
    if hasattr(model, "rebuild_from_edges"):
        batch = _edges_batch(edges)
        model.rebuild_from_edges(batch.users, batch.items, batch.types, batch.ts)
    elif edges:
        model.observe(_edges_batch(edges))


class Pipeline:
    """What the worker does with a valid micro-batch (stream.app.BatchHandler)."""

    def __init__(self, settings, recommender: Recommender, checkpoint: Path | None):
        self.settings = settings
        self.model = recommender
        self.checkpoint = checkpoint
        self._checkpoint_mtime = checkpoint.stat().st_mtime if checkpoint else None
        self._store: GraphStore | None = None
        self._started = asyncio.Lock()
        self._swapping = asyncio.Lock()  # a model swap and a graph upsert never interleave
        self._warm = False  # the model's state has been loaded from the graph
        self._last_swap_check = time.monotonic()
        # one thread runs every model call: the event loop stays free for Kafka and the graph while the model
        # computes (torch releases the GIL), and model calls never interleave
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._publish_model_info()

    @property
    def refresh_is_idempotent(self) -> bool:
        """The temporal GAT's state is a set of edges with their newest times: seeing an event twice changes
        nothing. The co-occurrence fallback counts, so it must only see events new to the graph."""
        return bool(getattr(self.model, "observe_is_idempotent", False))

    async def _on_model_thread(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, function, *args)

    @property
    def warm(self) -> bool:
        return self._warm

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
            edges, items = await store.all_edges(), await store.items_with_text()
            await self._on_model_thread(warm_start, self.model, edges, items)
            log.info("warm start: %d edges from the graph store in %.2f s", len(edges), time.perf_counter() - started)
            freeze_heap()
            self._warm = True

    async def upsert_interactions(self, events: list[Interaction]) -> list[Interaction]:
        await self.start()
        async with self._swapping:
            result = await (await self.store()).upsert_interactions(events)
        return result.fresh

    async def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> list[tuple[str, bytes]]:
        return await self._on_model_thread(self._refresh, self.model, events, fresh)

    def _refresh(self, model: Recommender, events: list[Interaction], fresh: list[Interaction]) -> list[tuple[str, bytes]]:
        """On the model thread; one model for the whole batch, even if a swap lands meanwhile."""
        if fresh:
            with metrics.STAGE_SECONDS.labels("observe").time():
                model.observe(InteractionBatch.from_events(fresh))
        last_event: dict[str, Interaction] = {}
        for event in events:  # in offset order per user, so the last one wins
            last_event[event.user_id] = event
        users = list(last_event)
        with metrics.STAGE_SECONDS.labels("rank").time():
            lists = model.recommend(users, self.settings.top_k, exclude=self.settings.exclude)
        now_ms = int(time.time() * 1000)
        metrics.LISTS_PUBLISHED.labels(model.name).inc(len(users))
        return [(user, recommendation_record(user, items, model=model.name, model_version=model.version(),
                                             last_event=last_event[user], published_ts=now_ms))
                for user, items in zip(users, lists)]

    async def upsert_items(self, items: list[Item]) -> None:
        await self.start()
        async with self._swapping:
            await (await self.store()).upsert_items(items)
        await self._on_model_thread(self.model.observe_items,
                                    [ItemText(i.item_id, i.title, i.category, i.brand) for i in items])

    async def periodic(self) -> None:
        """Every second: sweep stale embeddings; every few seconds: look for a newer checkpoint."""
        if not self._warm:
            return
        if hasattr(self.model, "sweep_stale"):
            await self._on_model_thread(self.model.sweep_stale, SWEEP_NODES_PER_TICK)
            metrics.STALE_NODES.set(self.model.staleness)
        self._publish_gpu_memory()
        if time.monotonic() - self._last_swap_check >= self.settings.model_poll_s:
            self._last_swap_check = time.monotonic()
            await self.swap_if_newer()

    async def swap_if_newer(self) -> bool:
        """Hot swap: load the newer checkpoint and rebuild its state from the graph while the old model keeps
        serving; then swap between two batches. Upserts wait while the graph is read, so the new model's state
        includes every batch written before the swap, and batches after it go to the new model."""
        checkpoint = newest_checkpoint(self.settings.model_dir)
        if checkpoint is None or (checkpoint == self.checkpoint and checkpoint.stat().st_mtime == self._checkpoint_mtime):
            return False
        loop = asyncio.get_running_loop()
        try:
            candidate = await loop.run_in_executor(None, load_recommender, self.settings, checkpoint)
        except Exception:
            log.exception("could not load %s; keeping %s %s", checkpoint, self.model.name, self.model.version())
            self._checkpoint_mtime, self.checkpoint = checkpoint.stat().st_mtime, checkpoint
            return False
        async with self._swapping:
            store = await self.store()
            edges, items = await store.all_edges(), await store.items_with_text()
            await loop.run_in_executor(None, warm_start, candidate, edges, items)
            previous, self.model = self.model, candidate
        self.checkpoint, self._checkpoint_mtime = checkpoint, checkpoint.stat().st_mtime
        self._publish_model_info()
        log.info("swapped %s %s for %s %s (%d edges)", previous.name, previous.version(), candidate.name,
                 candidate.version(), len(edges))
        del previous
        freeze_heap()
        return True

    def _publish_model_info(self) -> None:
        metrics.MODEL_INFO.clear()
        metrics.MODEL_INFO.labels(self.model.name, self.model.version()).set(1)

    def _publish_gpu_memory(self) -> None:
        device = getattr(self.model, "device", None)
        if device is not None and getattr(device, "type", "") == "cuda":
            import torch

            metrics.GPU_MEMORY.set(torch.cuda.memory_allocated(device))


def run_worker(settings) -> int:
    import faust

    from stream.app import create_app

    from .health import Health

    import torch

    # one intra-op thread by default: the event loop, Kafka's thread and the model thread already share the
    # cores, and idle intra-op threads spin-wait on a busy machine (measured: observe 45 -> 24 ms per batch)
    torch.set_num_threads(settings.torch_threads)
    names = TopicNames.with_prefix(settings.topic_prefix)
    ensure_topics(settings.bootstrap, names, settings.partitions, **settings.kafka_client_options())
    checkpoint = newest_checkpoint(settings.model_dir)
    pipeline = Pipeline(settings, load_recommender(settings, checkpoint), checkpoint)
    health = Health(settings, model_loaded=lambda: pipeline.warm)
    health.serve(settings.metrics_host, settings.metrics_port)
    app = create_app(settings, pipeline, names, on_tick=health.tick)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
