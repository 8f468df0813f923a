"""The composition point of the worker: the stream layer's batches go to the graph store and the model host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, TypeVar, cast

from graph_store import GraphRejected, GraphStore
from stream import metrics
from stream.events import Interaction, Item
from stream.group_lag import GroupLag
from stream.replica import ReplicaFeed, committed_offsets, interaction_of, item_of
from stream.retries import RecordsRejected
from stream.topics import TopicNames, ensure_topics

from .fold_ledger import FoldLedger
from .model_client import ModelClient
from .model_seam import CheckpointRefused, ModelHostDied, ModelInfo
from .model_versions import PROMOTE_HINT, Version, VersionError, rejection, served_version
from .probes import graph_check
from .process_metrics import MODEL_HOST, PROCESS_STATS
from .retention import GraphPruner
from .settings import Settings
from .write_stall import LEAVE_STATUS, WriteStall

if TYPE_CHECKING:
    import faust
    from faust.assignor import PartitionAssignor

    from .health import Health

log = logging.getLogger(__name__)
T = TypeVar("T")

GROUP_LAG_EVERY_S = 5.0  # how often the group's lag is read from the broker (a few requests per partition)
SWEEP_NODES_PER_TICK = 2_048  # stale nodes refreshed per 1 s tick, between batches
BROKER_WAIT_S = 15.0  # how long start-up waits for a broker that does not answer yet
GRAPH_WAIT_EVERY_S = 2.0  # how often a worker that waits to join its group tries the graph server


class Pipeline:
    """What the worker does with a valid micro-batch (stream.processing.BatchHandler). Model calls go to the model
    host process, one at a time; the event loop stays free for Kafka and the graph meanwhile."""

    def __init__(
        self, settings: Settings, model: ModelClient, version: Version | None, names: TopicNames | None = None
    ):
        """`version`: the one the model host was started with (or refused at start-up)."""
        self.settings = settings
        self.names = names or TopicNames.with_prefix(settings.topic_prefix)
        self.feed: ReplicaFeed | None = None  # every partition's events for the model (stream/replica.py)
        self.item_feed: ReplicaFeed | None = None  # every partition's item records for the model, likewise
        self.ledger = FoldLedger()  # what the serving model holds already: each event is folded once
        self.model = model
        self._tried = _file_version(version)  # the version last loaded or refused, as (name, file time)
        self._serving = self._tried if model.info.version_name else None  # None: the baseline serves
        self._version_problem: str | None = None  # said once in the log, not every poll
        self._store: GraphStore | None = None
        self._started = asyncio.Lock()
        self._swapping = asyncio.Lock()  # a model swap and a graph upsert never interleave
        self._folding = asyncio.Lock()  # the ledger and the model it describes change together
        self._warm = False  # the model's state has been loaded from the graph
        self._last_swap_check = time.monotonic()
        self.group_lag = GroupLag(
            settings.bootstrap, settings.app_id, self.names.interactions, **settings.kafka_client_options()
        )
        self._group_lag_read = 0.0  # monotonic time of the last read
        self._group_lag_reading = threading.Lock()  # one read at a time: its Kafka client is not thread-safe
        self._group_lag_problem: str | None = None  # said once in the log, not every read
        self.failure: str | None = None  # why the worker stopped, when it was not asked to
        self.exit_status = 1  # the worker's exit status when it stopped for `failure`
        self.writes = WriteStall()  # how long the graph writes have failed: past a limit, the worker leaves
        # the graph forgets what the model forgot (STREAMREC_RETENTION_DAYS)
        self.pruner = GraphPruner(self.store, settings.retention_prune_s)
        self._publish_model_info(model.info)

    @property
    def refresh_is_idempotent(self) -> bool:
        """Every servable model's state (the temporal GAT's, the co-occurrence fallback's) is a function of a set
        of edges with their newest times: seeing an event twice changes nothing. A model that is not (False) must
        only see events new to the graph."""
        return self.model.info.refresh_is_idempotent

    @property
    def warm(self) -> bool:
        return self._warm

    async def _model(self, request: Awaitable[T]) -> T:
        """A request to the model process; its death stops the worker."""
        try:
            return await request
        except ModelHostDied:
            log.critical("the model process died: stopping the worker (unacked batches are delivered again)")
            self.stop_worker("the model process died", 1)
            raise

    def stop_worker(self, reason: str, status: int) -> None:
        """Stops the worker as SIGTERM does (batches in flight get the grace time, what is not written is not
        acked, the consumer leaves the group); the exit status says why to the orchestrator."""
        if self.failure is None:
            self.failure, self.exit_status = reason, status
            os.kill(os.getpid(), signal.SIGTERM)

    def check_write_stall(self) -> None:
        """Every second: the stall's gauge, and leaving the group when the graph writes have failed for longer than
        STREAMREC_WRITE_STALL_LEAVE_S (streamrec/runtime/write_stall.py)."""
        metrics.GRAPH_WRITE_STALL.set(self.writes.seconds())
        limit = self.settings.write_stall_leave_s
        if self.failure is None and self.writes.should_leave(limit):
            log.error(
                "cannot write to the graph server at %s for %.0f s (%s): leaving the consumer group so that a worker "
                "that can write takes its partitions (STREAMREC_WRITE_STALL_LEAVE_S=%g); what was not written is "
                "not acked and goes to that worker; exit status %d: restarted, this worker joins again once the "
                "graph server takes writes",
                self.settings.bolt_uri,
                self.writes.seconds(),
                self.writes.describe(),
                limit,
                LEAVE_STATUS,
            )
            self.stop_worker(f"cannot write to the graph server for {limit:g} s", LEAVE_STATUS)

    async def store(self) -> GraphStore:
        # created on first use: the async driver belongs to the event loop Faust runs; its own retries are off,
        # so that the stage loop counts, logs and backs off every one (stream/retries.py)
        if self._store is None:
            self._store = GraphStore.from_settings(self.settings, driver_retries=False)
        return self._store

    async def start(self) -> None:
        """Schema first (key constraints before any MERGE), then the model's state from the graph of record."""
        async with self._started:
            if self._warm:
                return
            store = await self.store()
            with self.writes.attempt():
                await store.ensure_schema()
            started = time.perf_counter()
            offsets = await self._committed_offsets()  # before the graph read: see stream/replica.py
            item_offsets = await self._committed_offsets(self.names.items)
            # the model host reads the graph itself, a page at a time (its log says how many edges, how fast)
            with self.writes.attempt(hanging_counts=False):  # a large graph takes long to read, not to fail
                self.model.info = await self._model(self.model.warm_start())
            log.info("warm start done in %.2f s", time.perf_counter() - started)
            self._follow_from(offsets)
            self._follow_items_from(item_offsets)
            self._warm = True

    async def _committed_offsets(self, topic: str | None = None) -> dict[int, int] | None:
        """The consumer group's committed offsets of `topic` (interactions by default), when this worker's model
        follows every partition."""
        if not self.settings.follow_all_partitions:
            return None
        s, topic = self.settings, topic or self.names.interactions
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: committed_offsets(s.bootstrap, s.app_id, topic, **s.kafka_client_options())
        )

    def _follow_from(self, offsets: dict[int, int] | None) -> None:
        """Starts (or rewinds) the replica feed; only a model whose observe is idempotent can follow (both
        servable models are; one that is not would see its own partitions only). The ledger
        starts again with the model's state: after a swap, the feed reads again what the old model held beyond
        the graph read (events in flight, not yet written) before it leaves a partition to the agent."""
        following = offsets is not None and self.model.info.refresh_is_idempotent
        held_before = self.ledger.folded_through() if following and self._warm else None
        self.ledger.restart(offsets or {}, held_before)
        if not following or offsets is None:  # (following implies offsets)
            return
        if self.feed is None:
            s = self.settings
            self.feed = ReplicaFeed(
                s.bootstrap,
                self.names.interactions,
                self.fold_followed,
                asyncio.get_running_loop(),
                plan=self.ledger,
                parse=interaction_of,
                lag=metrics.FOLLOW_LAG,
                **s.kafka_client_options(),
            )
            self.feed.start(offsets)
            log.info("following every partition of %s from the group's committed offsets", self.names.interactions)
        else:
            self.feed.rewind(offsets)

    def _follow_items_from(self, offsets: dict[int, int] | None) -> None:
        """Every worker's model takes every item record, in offset order, from a feed of all partitions of `items`
        (from the group's committed offsets, read before the graph read that holds the records behind them): an
        item's text, category and brand shape its embedding and every list that ranks it, not only the lists of
        the worker whose agent consumes the item's partition. The agent then only writes the records to the graph.
        Not following, the agent's records go to the model as well."""
        if offsets is None:
            return
        if self.item_feed is None:
            s = self.settings
            self.item_feed = ReplicaFeed(
                s.bootstrap,
                self.names.items,
                self.fold_followed_items,
                asyncio.get_running_loop(),
                plan=None,
                parse=item_of,
                lag=None,
                **s.kafka_client_options(),
            )
            self.item_feed.start(offsets)
        else:
            self.item_feed.rewind(offsets)

    async def fold_followed_items(self, items: list[Item], read: dict[int, tuple[int, int]]) -> None:
        async with self._swapping:  # (a swap's graph read and the records folded in never interleave)
            if items:
                await self._model(self.model.observe_items(items))

    async def fold_followed(self, events: list[Interaction], read: dict[int, tuple[int, int]]) -> None:
        # a swap's graph read and the events folded in never interleave; the ledger moves with the model
        async with self._swapping, self._folding:
            new = self.ledger.unfolded(events)
            if new:
                await self._model(self.model.observe(new))
            self.ledger.read_through(read)
        count_folds("feed", len(new), len(events) - len(new))
        folded = time.time()
        for event in new:
            metrics.FOLLOW_DELAY.observe(max(0.0, folded - event.kafka_ts))

    def assigned(self, partitions: set[int]) -> None:
        self.ledger.own(partitions)

    def close(self) -> None:
        for feed in (self.feed, self.item_feed):
            if feed is not None:
                feed.stop()
        if self._group_lag_reading.acquire(timeout=5.0):  # (a read still running past that: the process exits)
            self.group_lag.close()

    async def upsert_interactions(self, events: list[Interaction]) -> list[Interaction]:
        await self.start()
        async with self._swapping, graph_refusals():
            with self.writes.attempt():
                result = await (await self.store()).upsert_interactions(events)
        return result.fresh

    async def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> list[tuple[str, bytes]]:
        name = self.model.info.name
        async with self._folding:
            new = self.ledger.unfolded(fresh)
            refreshed = await self._model(self.model.refresh(events, new))
            self.ledger.folded(events)  # (the events not fresh were in the graph, so in the model's state)
        count_folds("agent", len(new), len(fresh) - len(new))
        for stage, value in refreshed.seconds.items():
            metrics.STAGE_SECONDS.labels(stage).observe(value)
        metrics.LISTS_PUBLISHED.labels(name).inc(len(refreshed.lists))
        return refreshed.lists

    async def upsert_items(self, items: list[Item]) -> None:
        await self.start()
        async with self._swapping, graph_refusals():
            with self.writes.attempt():
                await (await self.store()).upsert_items(items)
        if self.item_feed is None:  # (following, the model takes every partition's records from the item feed)
            await self._model(self.model.observe_items(items))

    async def periodic(self) -> None:
        """Every second: sweep stale embeddings; every few seconds: read the group's lag, look for a newer
        checkpoint."""
        await self._export_group_lag()
        if not self._warm:
            return
        info = self.model.info = await self._model(self.model.sweep_stale(SWEEP_NODES_PER_TICK))
        metrics.STALE_NODES.set(info.staleness)
        metrics.RETENTION_CUTOFF.set(info.retention_cutoff or 0)
        self.pruner.tick(info.retention_cutoff)
        if info.gpu_memory_bytes is not None:
            metrics.GPU_MEMORY.labels(MODEL_HOST).set(info.gpu_memory_bytes)
        if time.monotonic() - self._last_swap_check >= self.settings.model_poll_s:
            self._last_swap_check = time.monotonic()
            await self.swap_if_changed()

    async def _export_group_lag(self) -> None:
        """streamrec_group_lag_events from the broker (stream/group_lag.py), every GROUP_LAG_EVERY_S."""
        if self.group_lag_due:
            await asyncio.get_running_loop().run_in_executor(None, self.export_group_lag_now)

    @property
    def group_lag_due(self) -> bool:
        return time.monotonic() - self._group_lag_read >= GROUP_LAG_EVERY_S

    def export_group_lag_now(self) -> None:
        """One read of the group's lag; it blocks, so it runs on a thread. Skipped while an earlier read still runs
        (a slow broker): the start-up wait's reads and the event loop's never share the client."""
        from kafka.errors import KafkaError

        if not self._group_lag_reading.acquire(blocking=False):
            return
        try:
            self._group_lag_read = time.monotonic()
            lag = self.group_lag.read()
        except (KafkaError, OSError) as exc:
            if str(exc) != self._group_lag_problem:
                log.warning("could not read the consumer group's lag from the broker: %s", exc)
            self._group_lag_problem = str(exc)
            return
        finally:
            self._group_lag_reading.release()
        self._group_lag_problem = None
        metrics.GROUP_LAG.set(sum(lag.values()))

    def export_group_lag_in_background(self) -> None:
        """export_group_lag_now on a thread of its own when due (the start-up wait has no event loop's executor)."""
        if self.group_lag_due:
            self._group_lag_read = time.monotonic()
            threading.Thread(target=self.export_group_lag_now, name="group-lag", daemon=True).start()

    def _wanted_version(self) -> Version | None:
        """The version to serve now (pinned, else CURRENT's); None keeps the serving model: nothing promoted yet,
        or a CURRENT that names no version (said once in the log)."""
        try:
            version = served_version(self.settings)
        except VersionError as exc:
            if str(exc) != self._version_problem:
                log.error("%s; keeping %s %s", exc, self.model.info.name, self.model.info.version)
            self._version_problem = str(exc)
            return None
        self._version_problem = None
        return version

    async def swap_if_changed(self) -> bool:
        """Hot swap, when another version is promoted or rolled back to (or the served one's file is rewritten):
        the host loads its checkpoint and rebuilds its state from the graph on a thread while the old model keeps
        serving; then the models swap between two batches. Upserts wait from the graph read to the swap, so the
        new model's state includes every batch written before the swap, and batches after it go to the new model."""
        version = self._wanted_version()
        if version is None or _file_version(version) in (None, self._tried, self._serving):
            return False  # (a rollback to the version still served after a refused one changes nothing)
        previous = self.model.info
        self._tried, checkpoint = _file_version(version), version.checkpoint
        refused = rejection(checkpoint)
        if refused:  # tried once per file version: a rewritten file is looked at again
            metrics.CHECKPOINTS_REJECTED.inc()
            log.error("refused the checkpoint: %s; keeping %s %s", refused, previous.name, previous.version)
            return False
        async with self._swapping:
            offsets = await self._committed_offsets()
            item_offsets = await self._committed_offsets(self.names.items)
            await self._model(self.model.build_candidate(str(checkpoint)))
            try:
                while not await self._model(self.model.candidate_ready()):
                    await asyncio.sleep(0.1)
            except ModelHostDied:
                raise
            except Exception:
                metrics.CHECKPOINTS_REJECTED.inc()
                log.exception("could not load %s; keeping %s %s", checkpoint, previous.name, previous.version)
                return False
            async with self._folding:
                self.model.info = await self._model(self.model.promote_candidate())
                self._serving = self._tried
                self._follow_from(offsets)  # the new model's state ends at the graph read: follow again from there
                self._follow_items_from(item_offsets)
        self._publish_model_info(self.model.info)
        log.info(
            "swapped %s %s for %s %s, version %s",
            previous.name,
            previous.version,
            self.model.info.name,
            self.model.info.version,
            version.name,
        )
        return True

    @staticmethod
    def _publish_model_info(info: ModelInfo) -> None:
        metrics.MODEL_INFO.clear()
        metrics.MODEL_INFO.labels(info.name, info.version, info.version_name or "").set(1)


def count_folds(path: str, folded: int, skipped: int) -> None:
    """Events handed to the model by each path, and those skipped because the model held them already."""
    metrics.MODEL_EVENTS.labels(path, "folded").inc(folded)
    metrics.MODEL_EVENTS.labels(path, "skipped").inc(skipped)


def served_model(info: ModelInfo) -> dict[str, str | None]:
    """The model serving lists, as /readyz names it (the fields of its list records)."""
    return {"model": info.name, "model_version": info.version, "model_version_name": info.version_name}


def _file_version(version: Version | None) -> tuple[str, float] | None:
    """(name, checkpoint file time): a version whose file is rewritten is looked at again; None when it is gone."""
    try:
        return (version.name, version.created) if version is not None else None
    except OSError:
        return None


@contextlib.asynccontextmanager
async def graph_refusals() -> AsyncIterator[None]:
    """The graph store's refusal of records, as the stream layer's."""
    try:
        yield
    except GraphRejected as refused:
        raise RecordsRejected(str(refused)) from refused


def owner_lookup(app: faust.App, topic: str, own_url: str) -> Callable[[str], str | None]:
    """user_id -> the URL of the worker that owns the user's partition of `topic`, None when it is this one or
    not known yet (before the first assignment). Faust's assignor gives every member the group's assignment
    with each member's URL (STREAMREC_ADVERTISED_HOST); the partition is the one every standard producer picks
    for the key (Kafka's default partitioner: murmur2 of the key, as the Java client and kafka-python)."""
    from kafka.partitioner.default import murmur2

    def owner_of(user_id: str) -> str | None:
        assignor = cast("PartitionAssignor", app.assignor)  # (faust's PartitionAssignorT leaves this method out)
        owners = {
            partition: str(url).rstrip("/")
            for url, topics in assignor.external_topics_metadata().items()
            for partition in topics.get(topic, ())
        }  # every partition of the topic has an owner
        if not owners:
            return None
        url = owners.get((murmur2(user_id.encode()) & 0x7FFFFFFF) % len(owners))
        return None if url == own_url else url

    return owner_of


class StartupError(RuntimeError):
    """The worker cannot start as configured; the message says what was tried and what to set."""


def startup_version(settings: Settings) -> tuple[Version | None, Path | None]:
    """(The version to start with, its checkpoint: None to serve the baseline). A pin (STREAMREC_MODEL_VERSION)
    that names no version, or one whose checkpoint is refused, stops start-up: the operator asked for exactly that
    one. With nothing promoted, or a refused current version, the baseline serves until a valid version is
    promoted (the poll swaps it in)."""
    pin = settings.model_version
    try:
        version = served_version(settings)
    except VersionError as exc:
        if pin is not None:
            raise StartupError(
                f"STREAMREC_MODEL_VERSION={pin}: {exc}: set it to one of them, or unset it to serve "
                "the promoted version"
            ) from None
        log.error("%s: serving the baseline", exc)
        return None, None
    if version is None:
        log.warning(
            "no model version is promoted under %s: serving the baseline until one is; %s",
            settings.model_dir,
            PROMOTE_HINT,
        )
        return None, None
    refused = rejection(version.checkpoint)
    if refused and pin is not None:
        raise StartupError(
            f"STREAMREC_MODEL_VERSION={pin}: refused the checkpoint: {refused}: train that version "
            "again, or pin another one"
        )
    if refused:
        metrics.CHECKPOINTS_REJECTED.inc()
        log.error("refused the checkpoint: %s; serving the baseline until a valid version is promoted", refused)
        return version, None
    return version, version.checkpoint


def broker_missing(settings: Settings, timeout_s: float) -> str:
    """What to do when no broker answers: start the local one, or reach the configured ones."""
    problem = f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:.0f} s"
    if settings.uses_local_kafka:
        return (
            f"{problem}: start the local broker (`streamrec services up`), or set STREAMREC_KAFKA_BOOTSTRAP to your "
            "brokers' host:port list"
        )
    return (
        f"{problem}: check that the brokers in STREAMREC_KAFKA_BOOTSTRAP run and can be reached from here, or set "
        "STREAMREC_KAFKA_BOOTSTRAP to the right host:port list (and STREAMREC_KAFKA_SECURITY_PROTOCOL / _SASL_* "
        "if they need it)"
    )


def wait_for_broker(settings: Settings, timeout_s: float = BROKER_WAIT_S) -> None:
    """A broker that is still starting gets `timeout_s`; one that does not answer by then stops start-up with one
    line instead of a client's retries and a traceback."""
    from .probes import kafka_answers

    deadline = time.monotonic() + timeout_s
    while not kafka_answers(settings.bootstrap, **settings.kafka_client_options()):
        if time.monotonic() > deadline:
            raise StartupError(broker_missing(settings, timeout_s))
        time.sleep(1.0)


class Stopped(Exception):
    """SIGTERM or SIGINT before the worker joined its group: it stops there, with status 0, as it would later."""


def wait_for_graph(
    settings: Settings,
    problem: str,
    while_waiting: Callable[[float], None] = lambda waited_s: None,
    every_s: float = GRAPH_WAIT_EVERY_S,
) -> float:
    """Until a write-mode session of the graph server answers (probes.graph_check): a worker joins its consumer
    group only when it can write, else it would hold partitions and process nothing. `problem`: why the first
    check failed. One line when the wait starts, one when it ends; `while_waiting(seconds so far)` runs between
    checks (the liveness tick: a worker that waits is not stuck). A refusal for good (credentials, database) stops
    start-up as it does before the wait; SIGTERM or SIGINT raise Stopped. Returns the seconds waited."""
    from .probes import graph_check

    stop: list[int] = []

    def stopping(signum: int, frame: object) -> None:
        stop.append(signum)

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    log.warning(
        "the graph server at %s does not take writes (%s): not joining the consumer group until it does "
        "(trying every %g s)",
        settings.bolt_uri,
        problem,
        every_s,
    )
    try:
        while True:
            next_try = time.monotonic() + every_s
            while time.monotonic() < next_try:  # short sleeps: a signal is acted on within a fraction of a second
                if stop:
                    raise Stopped(signal.Signals(stop[0]).name)
                while_waiting(time.monotonic() - started)
                time.sleep(max(0.0, min(0.2, next_try - time.monotonic())))
            refused, problem_now = graph_check(settings)
            if refused:
                raise StartupError(refused)
            if problem_now is None:
                waited = time.monotonic() - started
                log.warning(
                    "the graph server at %s takes writes, after %.0f s: joining the consumer group",
                    settings.bolt_uri,
                    waited,
                )
                return waited
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_worker(settings: Settings) -> int:
    import faust

    from stream.app import create_app

    from .health import Health

    names = TopicNames.with_prefix(settings.topic_prefix)
    wait_for_broker(settings)
    # before the group is joined: a worker that cannot write holds no partition. A refusal for good stops here, in
    # one line; a graph server that does not answer is waited for below, once the health endpoint answers
    refused, graph_down = graph_check(settings)
    if refused:
        raise StartupError(refused)
    ensure_topics(
        settings.bootstrap, names, settings.partitions, settings.replication_factor, **settings.kafka_client_options()
    )
    version, checkpoint = startup_version(settings)  # after the broker, whose absence is the one line then
    if settings.retention_ms and checkpoint is None:
        raise StartupError(
            f"STREAMREC_RETENTION_DAYS={settings.retention_days:g}: only the temporal GAT forgets old edges, and no "
            f"model version is served from {settings.model_dir}; train one (streamrec train) or leave the retention at 0"
        )
    try:
        model = ModelClient(settings, checkpoint)
    except CheckpointRefused as refused:  # (only a pinned version is refused here; others fall back)
        raise StartupError(
            f"STREAMREC_MODEL_VERSION={settings.model_version}: the model host refused the checkpoint: {refused}; "
            "train that version again, or pin another one"
        ) from None
    PROCESS_STATS.watch(MODEL_HOST, lambda: model.process.pid)  # its CPU and memory on this /metrics
    status = 0
    pipeline = Pipeline(settings, model, version, names)
    try:
        health = Health(
            settings,
            model_loaded=lambda: pipeline.warm and model.process.is_alive(),
            lookup=model.lookup_from_thread,
            served=lambda: served_model(model.info),
        )
        health.serve(settings.metrics_host, settings.metrics_port)
        if graph_down is not None:
            try:
                wait_for_graph(settings, graph_down, lambda waited_s: waiting(health, pipeline, waited_s))
            except Stopped as stop:
                log.info("stopped by %s while waiting for the graph server, before joining the consumer group", stop)
                return 0
            metrics.GRAPH_WRITE_STALL.set(0)

        def tick() -> None:
            health.tick()
            pipeline.check_write_stall()

        app = create_app(settings, pipeline, names, on_tick=tick)
        health.owner_of = owner_lookup(app, names.interactions, settings.http_url)
        # override_logging off: Faust's loggers keep the handler of runtime/logs.py (one format, text or json)
        # instead of mode's colour handler on stdout
        worker = faust.Worker(
            app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False, override_logging=False
        )
        worker.spinner = (
            None  # Faust's start-up spinner writes terminal escapes (backspace, show cursor) even to a file
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as stop:  # mode's worker always leaves through SystemExit, 0 after a signal
            status = stop.code if isinstance(stop.code, int) else 1
    finally:
        pipeline.close()
        model.close()
    if pipeline.failure:
        log.critical("worker stopped: %s (exit status %d)", pipeline.failure, pipeline.exit_status)
        return pipeline.exit_status
    return status


def waiting(health: Health, pipeline: Pipeline, waited_s: float) -> None:
    """While the worker waits to join its group: alive for the liveness probe, the wait in the stall gauge, and
    the group's lag read from the broker (every worker may be waiting: someone must show the records pile up)."""
    health.tick()
    metrics.GRAPH_WRITE_STALL.set(waited_s)
    pipeline.export_group_lag_in_background()
