"""The broker stopped and restarted mid-stream (Apache Kafka keeps its log): nothing lost, nothing counted twice,
every user still gets a list that reflects the user's last event."""

from __future__ import annotations

import json
import threading
import time

from stream.replay import make_producer, replay
from stream.topics import TopicNames

import real_events
from test_pipeline import consume_until, expected_edges, graph_edges, scrape

N_EVENTS = 2000


def test_a_broker_restart_mid_stream_loses_nothing_and_counts_nothing_twice(own_servers, worker_factory, unique):
    env, settings, broker, _ = own_servers("apache")
    data = real_events.first(real_events.spread(N_EVENTS), N_EVENTS)
    users = [unique + u for u in data.users]
    items = [unique + i for i in data.items]
    event_ids = [f"{unique}{k}" for k in range(N_EVENTS)]
    names = TopicNames.with_prefix(unique)
    worker = worker_factory(
        {**env, "STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app", "STREAMREC_BATCH_SIZE": "100"}
    ).start()
    port = int(worker.env["STREAMREC_METRICS_PORT"])

    producer = make_producer(settings.bootstrap)  # idempotent, retries until its delivery timeout (2 min)
    sending = threading.Thread(
        target=replay,
        args=(producer, names),
        kwargs=dict(event_ids=event_ids, users=users, items=items, types=data.types, ts=data.ts, rate=200.0),
    )
    sending.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and scrape(port, 'streamrec_events_total{outcome="applied"') < N_EVENTS / 5:
        time.sleep(0.05)
    applied_at_stop = scrape(port, 'streamrec_events_total{outcome="applied"')
    broker.stop()  # SIGTERM while the producer sends and the worker has batches to write, publish and commit
    time.sleep(3)
    broker.start()
    sending.join()
    producer.close()
    assert N_EVENTS / 5 <= applied_at_stop < N_EVENTS  # the broker stopped mid-stream

    expected = expected_edges(users, items, data.types, data.ts)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and graph_edges(settings, sorted(set(users))) != expected:
        time.sleep(1)
    assert graph_edges(settings, sorted(set(users))) == expected  # nothing lost, nothing counted twice
    assert worker.running()  # the worker rode out the broker's absence

    newest = {user: event_id for user, event_id in zip(users, event_ids)}

    def latest_lists(records) -> dict:
        return {json.loads(r.value)["user_id"]: json.loads(r.value)["last_event_id"] for r in records}

    lists = consume_until(settings.bootstrap, names.recommendations, lambda rs: latest_lists(rs) == newest)
    assert latest_lists(lists) == newest


def test_sigterm_with_the_graph_server_down_stops_the_worker_and_loses_nothing(own_servers, worker_factory, unique):
    """Faust waited on stop until every buffered event was acked, and ours are acked only once written: with the
    graph server down the worker never stopped. Now it stops within its grace time; the unwritten events are
    delivered again to the next worker."""
    import asyncio

    from graph_store import GraphStore
    from stream.events import interaction_value

    env, settings, _, graph = own_servers("apache")
    worker_env = {**env, "STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app"}
    worker = worker_factory(worker_env).start()
    graph.stop()
    names = TopicNames.with_prefix(unique)
    producer = make_producer(settings.bootstrap)
    now = int(time.time() * 1000)
    for k in range(20):
        producer.send(
            names.interactions,
            key=f"{unique}u{k % 4}".encode(),
            value=interaction_value(f"{unique}{k}", f"{unique}u{k % 4}", f"{unique}i{k}", "view", now + k),
        )
    producer.flush()
    producer.close()
    time.sleep(3)  # the worker is retrying the batch against the missing graph server

    started = time.monotonic()
    worker.process.terminate()
    worker.process.wait(60)
    assert time.monotonic() - started < 30 and worker.process.returncode == 0

    graph.start()
    worker_factory(worker_env).start()

    async def stored_events():
        async with GraphStore.from_settings(settings) as store:
            return sum(e["count"] for e in await store.edges_of_users([f"{unique}u{k}" for k in range(4)]))

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and asyncio.run(stored_events()) < 20:
        time.sleep(1)
    assert asyncio.run(stored_events()) == 20
