"""The model in a process of its own, next to the worker's event loop.

Python runs one thread at a time per process. With the model on a thread of the worker, every torch call
handed the interpreter back to the event loop (Kafka, Faust, the Bolt driver) and waited to get it again:
the model's steps took 4-10x their standalone time under load (measured at 5,000 events/s on REES46:
observe 222 ms and rank 170 ms per 1,327-event batch in the worker, 20 ms and 51 ms standalone). In its own
process the model has its own interpreter and core; the worker sends it events and gets list records back.

One request at a time over a pipe (the worker never interleaves model calls); the requests are declared in
model_seam.py, the worker's side is model_client.py. The host owns the serving model and, during a hot swap,
the candidate being rebuilt. If the host dies, the client raises ModelHostDied and the worker stops (its
orchestrator restarts it; unacked batches are delivered again).
"""

from __future__ import annotations

import gc
import logging
import os
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from stream.events import Interaction, Item

from .model_seam import REQUESTS, ModelInfo, ModelService, Refreshed
from .model_versions import version_name_of
from .settings import Settings

if TYPE_CHECKING:  # (the worker's event loop imports this module: no torch there)
    from graph_store.rows import EdgeColumns
    from model_server.contract import Recommender

# a model loaded to serve, and the name of its version (None: the baseline)
Loaded = tuple["Recommender", "str | None"]

log = logging.getLogger(__name__)


# -- the host process ------------------------------------------------------------------------------
def load_recommender(settings: Settings, checkpoint: Path | None, fall_back: bool = True) -> Loaded:
    """(The temporal GAT from a checkpoint, its version's name); (the co-occurrence baseline, None) when there is
    none (or, with `fall_back`, when the checkpoint is refused: there is no other model to serve at start-up).
    Every model loaded here (at start-up and each hot swap's candidate) gets STREAMREC_DIVERSITY."""
    model, version_name = _load_recommender(settings, checkpoint, fall_back)
    model.diversity = settings.diversity
    model.set_retention(settings.retention_ms)  # (the worker refuses a retention without a model that supports it)
    if settings.diversity:
        log.info(
            "lists re-ranked for diversity: MMR with lambda %.2f over each list's top %d candidates",
            settings.diversity,
            model.diversity_depth,
        )
    return model, version_name


def _load_recommender(settings: Settings, checkpoint: Path | None, fall_back: bool) -> Loaded:
    model: Recommender
    if checkpoint is None:
        from model_server.baselines.cooccurrence import ItemCooccurrence

        model = ItemCooccurrence()
        log.warning(
            "serving the %s baseline (version %s): no model version to serve under %s",
            model.name,
            model.version(),
            settings.model_dir,
        )
        return model, None
    from model_server.tgat import load_recommender as load_tgat
    from model_server.digest import CheckpointRejected  # (what model_server.tgat.checkpoint raises)

    # The hot path re-embeds only a bounded affected set (the batch's endpoints and up to the fan-out bound of items that
    # sample them); other users that sample them are marked stale (their lists wait for their own events, and
    # ranking or a lookup refreshes a stale user first), as are items past the bound; the sweep refreshes them
    # in the background. The batch's users are always exact; other users' and items' embeddings may lag by at
    # most one sweep (streamrec_stale_nodes).
    try:
        model = load_tgat(
            checkpoint,
            device="auto",
            auto_refresh=True,
            sweep_per_observe=0,
            exact_items=False,
            defer_users=True,
        )
    except CheckpointRejected as exc:
        if not fall_back:
            raise
        log.error("refused the checkpoint: %s", exc)
        return _load_recommender(settings, None, fall_back)
    log.info("serving the temporal GAT %s from %s on %s", model.version(), checkpoint, model.device)
    return model, version_name_of(checkpoint)


EDGE_PAGE_USERS = 5_000  # users (with all their edges) per page of the warm start's read


def warm_start(model: Recommender, settings: Settings) -> int:
    """The model's state from the graph of record, read here a page at a time (item text first, then the
    interaction edges): no list of every edge in either process, nor through the pipe. Returns the edges read."""
    import asyncio

    from graph_store import GraphStore

    async def read_and_fold() -> int:
        async with GraphStore.from_settings(settings) as store:
            items = await store.items_with_text()
            if items:
                model.observe_items([Item(i["id"], i["title"], i["category"], i["brand"]) for i in items])
            edges = 0
            async for page in store.edge_pages(EDGE_PAGE_USERS):
                if page and not edges:  # an empty graph leaves the model's own state (a new model's: none)
                    model.begin_rebuild()
                if page:
                    fold_page(model, page)
                edges += len(page)
            if edges:
                model.finish_rebuild()
            return edges

    return asyncio.run(read_and_fold())


def fold_page(model: Recommender, page: EdgeColumns) -> None:
    model.rebuild_page(page.users, page.items, page.types, page.last_ts)


def freeze_heap() -> None:
    """Puts everything alive now (the model's state, the id maps, the libraries) out of the garbage collector's
    reach. Otherwise its full collections, triggered by the many small objects each batch allocates (list
    records), walk that whole heap: measured 80 -> 41 ms to rank a 470-event REES46 batch. Unfrozen and
    collected first, so a swapped-out model's reference cycles are freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHost(ModelService):
    """What the host process does with each request; also usable in-process (tests, tools)."""

    def __init__(self, settings: Settings, checkpoint: Path | None):
        import torch

        # one intra-op thread by default (STREAMREC_TORCH_THREADS): the broker, the graph server and the worker's
        # event loop share the cores, and idle intra-op threads spin-wait on a busy machine
        torch.set_num_threads(settings.torch_threads)
        self.settings = settings
        # a pinned version (STREAMREC_MODEL_VERSION) is what the operator asked for: refused, it stops start-up
        self.model, self.version_name = load_recommender(settings, checkpoint, fall_back=settings.model_version is None)
        self.candidate: Future[Loaded] | None = None  # a future of (model, version name)

    def info(self) -> ModelInfo:
        model = self.model
        gpu: int | None = None
        if model.device.type == "cuda":
            import torch

            gpu = int(torch.cuda.memory_allocated(model.device))
        return ModelInfo(
            model.name,
            model.version(),
            model.observe_is_idempotent,
            str(model.device),
            int(model.staleness),
            gpu,
            self.version_name,
            model.retention_cutoff,
        )

    def warm_start(self) -> ModelInfo:
        started = time.perf_counter()
        edges = warm_start(self.model, self.settings)
        log.info("warm start: %d edges from the graph store in %.2f s", edges, time.perf_counter() - started)
        freeze_heap()
        return self.info()

    def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> Refreshed:
        from model_server.contract import InteractionBatch
        from stream.events import recommendation_record

        model = self.model
        seconds: dict[str, float] = {}
        if fresh:
            started = time.perf_counter()
            model.observe(InteractionBatch.from_events(fresh))
            seconds["observe"] = time.perf_counter() - started
        last_event: dict[str, Interaction] = {}
        for event in events:  # in offset order per user, so the last one wins
            last_event[event.user_id] = event
        users = list(last_event)
        started = time.perf_counter()
        lists = model.recommend(
            users, self.settings.top_k, exclude=self.settings.exclude, because=self.settings.because
        )
        seconds["rank"] = time.perf_counter() - started
        now_ms, version = int(time.time() * 1000), model.version()
        return Refreshed(
            [
                (
                    user,
                    recommendation_record(
                        user,
                        items,
                        model=model.name,
                        model_version=version,
                        model_version_name=self.version_name,
                        last_event=last_event[user],
                        published_ts=now_ms,
                    ),
                )
                for user, items in zip(users, lists)
            ],
            seconds,
        )

    def observe(self, events: list[Interaction]) -> None:
        from model_server.contract import InteractionBatch

        self.model.observe(InteractionBatch.from_events(events))

    def lookup(self, user_id: str, k: int) -> bytes | None:
        from stream.events import recommendation_record

        model = self.model
        if model.users.get(user_id) < 0:
            return None
        items = model.recommend([user_id], k, exclude=self.settings.exclude, because=self.settings.because)[0]
        return recommendation_record(
            user_id,
            items,
            model=model.name,
            model_version=model.version(),
            model_version_name=self.version_name,
            last_event=None,
            published_ts=int(time.time() * 1000),
        )

    def observe_items(self, items: list[Item]) -> None:
        self.model.observe_items(items)

    def sweep_stale(self, max_nodes: int) -> ModelInfo:
        self.model.sweep_stale(max_nodes)
        return self.info()

    def build_candidate(self, checkpoint: str) -> None:
        """Loads a newer checkpoint and rebuilds its state on a thread of this process, while this one keeps
        answering with the serving model; candidate_ready() tells when it is done."""

        def build() -> Loaded:
            import torch

            candidate, version_name = load_recommender(self.settings, Path(checkpoint), fall_back=False)
            with torch.inference_mode():  # as serve() answers requests: the state it makes is used only there
                warm_start(candidate, self.settings)
            return candidate, version_name

        self.candidate = ThreadPoolExecutor(1, thread_name_prefix="candidate").submit(build)

    def candidate_ready(self) -> bool:
        """(A failed build's candidate is dropped.)"""
        building = self._building()
        if not building.done():
            return False
        if building.exception() is not None:
            self.candidate = None
            building.result()
        return True

    def promote_candidate(self) -> ModelInfo:
        (self.model, self.version_name), self.candidate = self._building().result(), None
        freeze_heap()
        return self.info()

    def _building(self) -> Future[Loaded]:
        if self.candidate is None:
            raise LookupError("no candidate model is being built: build_candidate comes first")
        return self.candidate


def prepare_process(settings: Settings) -> None:
    """The spawned host starts unconfigured: its log records take the worker's format (runtime/logs.py), and no
    third-party progress bar is drawn into that log."""
    from .logs import configure_logging
    from .process_metrics import MODEL_HOST

    configure_logging(settings.log_level, settings.log_format, role=MODEL_HOST)
    # transformers draws a "Loading weights" bar when the item-text encoder loads; read when huggingface_hub is
    # first imported, which is later, with the model
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def serve(connection: Connection, settings: Settings, checkpoint: Path | None) -> None:
    """The host process: answers ("ok", result) or ("error", (what, traceback)) to each (request, args) until the
    pipe closes (the worker stopped or died). Only the requests of the seam are answered."""
    prepare_process(settings)
    from model_server.digest import CheckpointRejected

    try:
        host = ModelHost(settings, checkpoint)
        connection.send(("ok", host.info()))
    except CheckpointRejected as refused:
        connection.send(("refused", str(refused)))
        return
    except Exception as exc:
        connection.send(("error", (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
        return
    handlers: dict[str, Callable[..., Any]] = {name: getattr(host, name) for name in REQUESTS}
    import torch

    # The host never trains: without autograd's bookkeeping (version counters, views) each of the ~1,000 small
    # torch calls of a micro-batch costs less (REES46, 3-event batches in process: 8.1 -> 7.6 ms). The model and
    # the state its checkpoint holds are made before, outside it (ordinary tensors, which may be changed in place
    # inside it); whatever a request makes is made inside it, and never used outside.
    with torch.inference_mode():
        answer_requests(connection, handlers)


def answer_requests(connection: Connection, handlers: dict[str, Callable[..., Any]]) -> None:
    while True:
        try:
            request, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            handler = handlers.get(request)
            if handler is None:
                raise LookupError(f"no such request {request!r}: the model host answers {', '.join(REQUESTS)}")
            connection.send(("ok", handler(*args)))
        except Exception as exc:  # the worker retries the call: the traceback once per call, at debug level
            log.debug("%s failed", request, exc_info=True)
            connection.send(("error", (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
