"""The temporal GAT inside the pipeline: its neighbourhoods equal the graph store's bounded reads, and a newer
checkpoint is swapped in under a running stream without losing or half-processing a batch."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import time

import pytest
import torch

import real_events
from conftest import Event, wait_for
from graph_store import GraphStore
from model_server.contract import InteractionBatch
from model_server.tgat import build_streamrec
from stream.events import interaction_value
from stream.replay import make_producer
from stream.topics import TopicNames

N_TRAIN = 600


@pytest.fixture(scope="module")
def ml_events():
    """3,000 real events in time order: ML-100K spread over the data set (many users and items, a few events
    each), with generated repeats (real_events.with_repeats), so the store's one edge per (user, item, type)
    differs from the raw events."""
    return real_events.first(real_events.with_repeats(real_events.spread(2600)), 3000)


@pytest.fixture(scope="module")
def long_stream():
    """20,000 real events in time order (every fifth of ML-100K): more than the swap test streams."""
    return real_events.spread(20_000)


def tiny_model(data, seed: int, prefix: str):
    """A small temporal GAT fitted on the first events (seconds on a CPU); ids prefixed to keep tests apart."""
    torch.set_num_threads(1)
    model = build_streamrec({"dim": 16, "heads": 1, "k": 5}, {"epochs": 1, "negatives": 32, "progress": False},
                            seed=seed, text=False, sweep_per_observe=0)
    model.fit(InteractionBatch([prefix + u for u in data.users[:N_TRAIN]], [prefix + i for i in data.items[:N_TRAIN]],
                               data.types[:N_TRAIN], data.ts[:N_TRAIN]))
    return model




def test_model_neighbourhoods_equal_the_graph_stores_bounded_reads(ml_events, server_settings, unique):
    model = tiny_model(ml_events, 0, unique)
    k = model.config.k
    n = 3000
    events = [Event(unique + u, unique + i, t, ts, 0, offset)
              for offset, (u, i, t, ts) in enumerate(zip(ml_events.users[:n], ml_events.items[:n], ml_events.types[:n],
                                                         ml_events.ts[:n]))]

    async def feed_and_read():
        async with GraphStore.from_settings(server_settings) as store:
            await store.ensure_schema()
            for start in range(0, n, 250):
                chunk = events[start:start + 250]
                await store.upsert_interactions(chunk)
                model.observe(InteractionBatch.from_events(chunk))
            users = sorted({e.user_id for e in events})
            items = sorted({e.item_id for e in events})
            return (await store.recent_items_of_users(users, k), await store.recent_users_of_items(items, k))

    by_user, by_item = asyncio.run(feed_and_read())
    assert len(by_user) > 500 and len(by_item) > 500
    for node_id, recent in by_user.items():
        assert model.recent_neighbours(node_id, "user") == [(n["id"], n["type"], n["ts"]) for n in recent], node_id
    for node_id, recent in by_item.items():
        assert model.recent_neighbours(node_id, "item") == [(n["id"], n["type"], n["ts"]) for n in recent], node_id


def test_a_newer_checkpoint_is_swapped_in_under_a_running_stream_and_nothing_is_lost(
        long_stream, server_settings, worker_factory, unique, tmp_path):
    model_dir = tmp_path / "models"
    first = tiny_model(long_stream, 1, unique)
    first.save(model_dir / "a")
    second = tiny_model(long_stream, 2, unique)
    second.save(tmp_path / "staged-b")
    assert first.version() != second.version()

    names = TopicNames.with_prefix(unique)
    worker = worker_factory({"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app",
                             "STREAMREC_MODEL_DIR": str(model_dir), "STREAMREC_BATCH_SIZE": "100",
                             "STREAMREC_MODEL_POLL_S": "1"}).start()
    producer = make_producer(server_settings.bootstrap)
    send_ids = lambda k: (unique + long_stream.users[k], unique + long_stream.items[k])  # noqa: E731
    k, swapped_at, deadline = 0, None, time.monotonic() + 120
    # a stream, not one burst, that goes on until the swap has landed and 1,000 more events followed it
    while k < len(long_stream) and time.monotonic() < deadline and (swapped_at is None or k < swapped_at + 1000):
        if k == 400:  # a checkpoint altered after training: refused, the first model keeps serving
            shutil.copytree(model_dir / "a", model_dir / "tampered")
            with open(model_dir / "tampered" / "model.pt", "ab") as tampered:
                tampered.write(b"\0")
            # newer than "a", older than "b" (copytree keeps the staged file's time): looked at first, then passed over
            between = ((model_dir / "a" / "model.pt").stat().st_mtime + (tmp_path / "staged-b" / "model.pt").stat().st_mtime) / 2
            os.utime(model_dir / "tampered" / "model.pt", (between, between))
            producer.flush()
            wait_for(lambda: "refused the checkpoint" in worker.log(), timeout_s=20, interval_s=0.2)
        if k == 800:  # mid-stream, a training job publishes a newer checkpoint
            shutil.copytree(tmp_path / "staged-b", model_dir / "b")
        user, item = send_ids(k)
        producer.send(names.interactions, key=user.encode(), value=interaction_value(
            f"{unique}{k}", user, item, long_stream.types[k], long_stream.ts[k]))
        k += 1
        if k % 100 == 0:
            producer.flush()
            time.sleep(0.1)
            if swapped_at is None and "swapped streamrec" in worker.log():
                swapped_at = k
    producer.flush()
    producer.close()
    n = k
    assert swapped_at is not None, "no swap within the stream"
    users = [send_ids(j)[0] for j in range(n)]
    last_event = {user: f"{unique}{j}" for j, user in enumerate(users)}

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(names.recommendations, bootstrap_servers=server_settings.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=2000)
    lists, latest = [], {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and latest != last_event:
        for record in consumer:
            entry = json.loads(record.value)
            lists.append(entry)
            latest[entry["user_id"]] = entry["last_event_id"]
    consumer.close()
    assert latest == last_event  # every user's newest list reflects their newest event

    versions = [entry["model_version"] for entry in sorted(lists, key=lambda entry: entry["published_ts"])]
    assert first.version() in versions and second.version() in versions
    switched = versions.index(second.version())
    assert all(v == second.version() for v in versions[switched:]), "a list from the old model after the swap"
    assert {entry["user_id"] for entry in lists} == set(users)
    assert all(entry["model"] == "streamrec" and entry["items"] and "because" in entry["items"][0] for entry in lists)

    async def stored_events():
        async with GraphStore.from_settings(server_settings) as store:
            return sum(e["count"] for e in await store.edges_of_users(sorted(set(users))))
    assert asyncio.run(stored_events()) == n
    log = worker.log()
    assert "swapped streamrec" in log and "Traceback" not in log
    assert f"refused the checkpoint: {model_dir / 'tampered' / 'model.pt'}: its SHA-256" in log
    from test_pipeline import scrape

    assert scrape(int(worker.env["STREAMREC_METRICS_PORT"]), "streamrec_checkpoints_rejected_total") == 1
