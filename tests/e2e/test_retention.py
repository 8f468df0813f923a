"""STREAMREC_RETENTION_DAYS on Apache Kafka + Neo4j: a worker forgets the interactions older than the retention
(counted back from the newest event), deletes them from the graph, and a worker that starts afterwards and reads
the graph serves the same lists."""

from __future__ import annotations

import asyncio
import time

from graph_store import GraphStore
from stream.replay import make_producer, replay
from stream.topics import TopicNames
from streamrec.tools.live import WorkerProcess, free_port

import real_events
from test_model_serving import N_TRAIN, tiny_model
from test_pipeline import scrape
from test_scale_out import drained, empty_graph, list_difference, lists_of, same_list

RETENTION_DAYS = 30  # of ML-100K's seven months, spread over the events below


def edges_of(settings, users: list[str]) -> list[dict]:
    async def read() -> list[dict]:
        async with GraphStore.from_settings(settings) as store:
            return await store.edges_of_users(users)

    return asyncio.run(read())


def test_a_worker_forgets_what_is_older_than_the_retention_and_a_new_worker_rebuilds_the_same_lists(
    module_servers, unique, tmp_path
):
    env, settings = module_servers
    asyncio.run(empty_graph(settings))
    data = real_events.first(real_events.spread(N_TRAIN), N_TRAIN)  # every id is in the checkpoint (see docs)
    users, items = [unique + u for u in data.users], [unique + i for i in data.items]
    model_dir = tmp_path / "models"
    tiny_model(data, 5, unique).save(model_dir / "v1")
    base = {
        **env,
        "STREAMREC_MODEL_DIR": str(model_dir),
        "STREAMREC_MODEL_VERSION": "v1",
        "STREAMREC_TOPIC_PREFIX": unique,
        "STREAMREC_RETENTION_DAYS": str(RETENTION_DAYS),
        "STREAMREC_RETENTION_PRUNE_S": "1",
    }

    def worker(app_id: str) -> WorkerProcess:
        port = free_port()
        return WorkerProcess(
            {**base, "STREAMREC_APP_ID": app_id, "STREAMREC_METRICS_PORT": str(port)}, tmp_path / f"{app_id}.log"
        )

    workers = [worker(unique + "app").start(until_ready=True)]
    try:
        producer = make_producer(settings.bootstrap)
        try:
            ids = [f"{unique}{k}" for k in range(len(users))]
            replay(
                producer,
                TopicNames.with_prefix(unique),
                event_ids=ids,
                users=users,
                items=items,
                types=data.types,
                ts=data.ts,
            )
        finally:
            producer.close()
        running = workers[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            drained([running], len(users))
            and scrape(running.metrics_port, "streamrec_graph_pruned_to_ms")
            == scrape(running.metrics_port, "streamrec_retention_cutoff_ms")
            > 0
        ):
            time.sleep(0.5)
        cutoff = int(scrape(running.metrics_port, "streamrec_retention_cutoff_ms"))
        assert max(data.ts) - (RETENTION_DAYS + 1) * 86_400_000 < cutoff <= max(data.ts) - RETENTION_DAYS * 86_400_000
        assert scrape(running.metrics_port, "streamrec_graph_pruned_to_ms") == cutoff, running.log()[-3000:]
        everyone = sorted(set(users))
        # the graph is written behind the model: a write of old events may land after a deletion, and the next
        # deletion (every STREAMREC_RETENTION_PRUNE_S) takes it
        deadline = time.monotonic() + 30
        while any(edge["last_ts"] < cutoff for edge in edges_of(settings, everyone)) and time.monotonic() < deadline:
            time.sleep(0.5)
        kept = edges_of(settings, everyone)
        assert kept and all(edge["last_ts"] >= cutoff for edge in kept)
        assert len(kept) < len(set(zip(users, items))) / 3  # most of seven months is forgotten

        reference = worker(unique + "reference").start(until_ready=True)  # its own group: reads everything again
        workers.append(reference)
        deadline = time.monotonic() + 120  # (the cutoff gauge follows the model at the next periodic tick)
        while time.monotonic() < deadline and not (
            drained([running, reference], len(users))
            and scrape(reference.metrics_port, "streamrec_retention_cutoff_ms") == cutoff
        ):
            time.sleep(1)
        assert drained([running, reference], len(users))
        assert scrape(reference.metrics_port, "streamrec_retention_cutoff_ms") == cutoff
        running_lists, reference_lists = lists_of(running, everyone), lists_of(reference, everyone)
        differing = [u for u in everyone if not same_list(running_lists[u], reference_lists[u])]
        assert differing == [], [(u, list_difference(running_lists[u], reference_lists[u])) for u in differing[:3]]
    finally:
        for w in workers:
            w.stop()
