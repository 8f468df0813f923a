"""The temporal GAT inside the pipeline: its neighbourhoods equal the graph store's bounded reads; a promoted
version is swapped in under a running stream (and a rollback swaps back) without losing or half-processing a
batch; a pinned version is served whatever is promoted. The served version shows in the lists, /readyz and the
streamrec_model_info metric."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

import real_events
from conftest import Event, consume_until, get_json as get, wait_for
from graph_store import GraphStore
from model_server.contract import InteractionBatch
from model_server.tgat import build_streamrec
from stream.events import interaction_value
from stream.replay import make_producer
from stream.topics import TopicNames
from test_pipeline import scrape

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
    model = build_streamrec(
        {"dim": 16, "heads": 1, "k": 5},
        {"epochs": 1, "negatives": 32, "progress": False},
        seed=seed,
        text=False,
        sweep_per_observe=0,
    )
    model.fit(
        InteractionBatch(
            [prefix + u for u in data.users[:N_TRAIN]],
            [prefix + i for i in data.items[:N_TRAIN]],
            data.types[:N_TRAIN],
            data.ts[:N_TRAIN],
        )
    )
    return model


def test_model_neighbourhoods_equal_the_graph_stores_bounded_reads(ml_events, server_settings, unique):
    model = tiny_model(ml_events, 0, unique)
    k = model.config.k
    n = 3000
    events = [
        Event(unique + u, unique + i, t, ts, 0, offset)
        for offset, (u, i, t, ts) in enumerate(
            zip(ml_events.users[:n], ml_events.items[:n], ml_events.types[:n], ml_events.ts[:n])
        )
    ]

    async def feed_and_read():
        async with GraphStore.from_settings(server_settings) as store:
            await store.ensure_schema()
            for start in range(0, n, 250):
                chunk = events[start : start + 250]
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


def models_cli(model_dir, *args: str) -> subprocess.CompletedProcess:
    """`streamrec models ...` as an operator runs it beside the worker, on the worker's model folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    env.update(STREAMREC_HOME=str(model_dir.parent / "cli-home"), STREAMREC_MODEL_DIR=str(model_dir))
    return subprocess.run(
        [sys.executable, "-m", "streamrec", "models", *args], capture_output=True, text=True, env=env, timeout=120
    )


def served(port: int) -> tuple[str, str] | None:
    """(model_version, model_version_name) that a ready worker's /readyz names."""
    code, body = get(port, "/readyz")
    return (body["model_version"], body["model_version_name"]) if code == 200 else None


def send(producer, names, unique, stream, indices) -> None:
    for k in indices:
        user, item = unique + stream.users[k], unique + stream.items[k]
        producer.send(
            names.interactions,
            key=user.encode(),
            value=interaction_value(f"{unique}{k}", user, item, stream.types[k], stream.ts[k]),
        )


def lists_until(bootstrap, topic, done, timeout_s: float = 120.0) -> list[dict]:
    records = consume_until(bootstrap, topic, lambda rs: done([json.loads(r.value) for r in rs]), timeout_s)
    return [json.loads(record.value) for record in records]


def last_events(unique, stream, indices) -> dict[str, str]:
    """{user: the id of the user's last event among `indices`}: what the user's newest list names once the worker
    has them all. Only that one is sure to be named: a list names the last of its user's events in its batch."""
    return {unique + stream.users[k]: f"{unique}{k}" for k in indices}


def newest(lists: list[dict]) -> dict[str, str]:
    """{user: the last event its newest list names} (a user's lists arrive in order, on the user's partition)."""
    return {entry["user_id"]: entry["last_event_id"] for entry in lists}


def reflects(expected: dict[str, str]):
    """lists_until's condition: every user in `expected` has a newest list naming their expected last event."""
    return lambda lists: expected.items() <= newest(lists).items()


def two_versions_a_promoted(stream, unique, model_dir):
    """Versions a and b under `model_dir`, a promoted; b is the newer file, so nothing serves it by file time.
    Promoted through the library: `streamrec models promote` itself is what the tests then run, as an operator."""
    from streamrec.runtime.model_versions import VersionStore

    first = tiny_model(stream, 1, unique)
    first.save(model_dir / "a")
    second = tiny_model(stream, 2, unique)
    second.save(model_dir / "b")
    VersionStore(model_dir).promote("a")
    return first, second


def test_promote_swaps_the_served_version_live_rollback_swaps_back_and_nothing_is_lost(
    long_stream, server_settings, worker_factory, unique, tmp_path
):
    model_dir = tmp_path / "models"
    first, second = two_versions_a_promoted(long_stream, unique, model_dir)
    assert first.version() != second.version()

    names = TopicNames.with_prefix(unique)
    worker = worker_factory(
        {
            "STREAMREC_TOPIC_PREFIX": unique,
            "STREAMREC_APP_ID": unique + "app",
            "STREAMREC_MODEL_DIR": str(model_dir),
            "STREAMREC_BATCH_SIZE": "100",
            "STREAMREC_MODEL_POLL_S": "1",
        }
    ).start()
    port = worker.metrics_port
    assert wait_for(lambda: served(port)) == (first.version(), "a")
    producer = make_producer(server_settings.bootstrap)
    k, swapped_at, deadline = 0, None, time.monotonic() + 120
    # a stream, not one burst, that goes on until the swap has landed and 1,000 more events followed it
    while k < len(long_stream) and time.monotonic() < deadline and (swapped_at is None or k < swapped_at + 1000):
        if k == 400:
            # an altered checkpoint: `promote` refuses it; recorded by hand, as if altered after its promotion,
            # the worker refuses it too and the first model keeps serving; the operator rolls back
            shutil.copytree(model_dir / "a", model_dir / "tampered")
            with open(model_dir / "tampered" / "model.pt", "ab") as tampered:
                tampered.write(b"\0")
            refused = models_cli(model_dir, "promote", "tampered")
            assert refused.returncode == 1 and "not promoting tampered: " in refused.stderr, refused.stderr
            record = json.loads((model_dir / "CURRENT").read_text())
            record["history"].append({"version": "tampered", "promoted_at": "by hand"})
            (model_dir / "CURRENT").write_text(json.dumps({**record, "current": "tampered"}))
            producer.flush()
            wait_for(lambda: "refused the checkpoint" in worker.log(), timeout_s=20, interval_s=0.2)
            rolled_back = models_cli(model_dir, "rollback")
            assert rolled_back.stdout.startswith("rolled back from tampered to a"), rolled_back.stderr
        if k == 800:  # mid-stream, the operator promotes the newer version
            assert models_cli(model_dir, "promote", "b").returncode == 0
        send(producer, names, unique, long_stream, [k])
        k += 1
        if k % 100 == 0:
            producer.flush()
            time.sleep(0.1)
            if swapped_at is None and "swapped streamrec" in worker.log():
                swapped_at = k
    producer.flush()
    n = k
    assert swapped_at is not None, "no swap within the stream"
    users = [unique + long_stream.users[j] for j in range(n)]
    last_event = last_events(unique, long_stream, range(n))

    lists = lists_until(server_settings.bootstrap, names.recommendations, lambda es: newest(es) == last_event)
    assert newest(lists) == last_event  # every user's newest list reflects their newest event

    served_in_order = [
        (e["model_version"], e["model_version_name"]) for e in sorted(lists, key=lambda e: e["published_ts"])
    ]
    switched = served_in_order.index((second.version(), "b"))
    assert set(served_in_order[:switched]) == {(first.version(), "a")}
    assert set(served_in_order[switched:]) == {(second.version(), "b")}, "a list from the old model after the swap"
    assert {entry["user_id"] for entry in lists} == set(users)
    assert all(entry["model"] == "streamrec" and entry["items"] and "because" in entry["items"][0] for entry in lists)
    assert served(port) == (second.version(), "b")
    assert scrape(port, f'streamrec_model_info{{model="streamrec",version="{second.version()}",version_name="b"}}') == 1

    async def stored_events():
        async with GraphStore.from_settings(server_settings) as store:
            return sum(e["count"] for e in await store.edges_of_users(sorted(set(users))))

    # the graph write runs behind the lists (its lane beside the next batch's model work): the last one may still
    # be under way when the last list arrives
    wait_for(lambda: asyncio.run(stored_events()) == n, timeout_s=60)
    assert asyncio.run(stored_events()) == n

    # rollback: the worker swaps back to "a" while it runs, and the lists of later events say so
    assert models_cli(model_dir, "rollback").stdout.startswith("rolled back from b to a")
    assert wait_for(lambda: served(port) == (first.version(), "a"), timeout_s=60)
    send(producer, names, unique, long_stream, range(n, n + 100))
    producer.flush()
    producer.close()
    after = {f"{unique}{j}" for j in range(n, n + 100)}
    # until every user of these events has the list of their last one (an earlier one of theirs may be named by
    # no list: waiting for every event to be named waited out the whole timeout)
    after_last = last_events(unique, long_stream, range(n, n + 100))
    lists = lists_until(server_settings.bootstrap, names.recommendations, reflects(after_last))
    assert after_last.items() <= newest(lists).items()
    assert {(e["model_version"], e["model_version_name"]) for e in lists if e["last_event_id"] in after} == {
        (first.version(), "a")
    }
    log = worker.log()
    assert log.count("swapped streamrec") == 2 and "Traceback" not in log
    assert f"refused the checkpoint: {model_dir / 'tampered' / 'model.pt'}: its SHA-256" in log
    assert scrape(port, "streamrec_checkpoints_rejected_total") == 1


def test_the_pinned_version_is_served_whatever_is_promoted_and_a_wrong_pin_stops_start_up(
    long_stream, server_settings, worker_factory, unique, tmp_path
):
    model_dir = tmp_path / "models"
    first, second = two_versions_a_promoted(long_stream, unique, model_dir)
    env = {
        "STREAMREC_TOPIC_PREFIX": unique,
        "STREAMREC_APP_ID": unique + "app",
        "STREAMREC_MODEL_DIR": str(model_dir),
        "STREAMREC_MODEL_POLL_S": "1",
    }

    with pytest.raises(RuntimeError, match="the worker exited with 2") as stopped:
        worker_factory({**env, "STREAMREC_MODEL_VERSION": "nope"}).start()
    assert (
        f"STREAMREC_MODEL_VERSION=nope: no version 'nope' under {model_dir} (a folder with model.pt); "
        "versions: a, b: set it to one of them"
    ) in str(stopped.value)

    worker = worker_factory({**env, "STREAMREC_MODEL_VERSION": "b"}).start()
    port = worker.metrics_port
    assert wait_for(lambda: served(port)) == (second.version(), "b")
    shutil.copytree(model_dir / "a", model_dir / "c")
    assert models_cli(model_dir, "promote", "c").returncode == 0  # CURRENT changes; the pin wins
    names = TopicNames.with_prefix(unique)
    producer = make_producer(server_settings.bootstrap)
    send(producer, names, unique, long_stream, range(200))
    producer.flush()
    producer.close()
    sent_last = last_events(unique, long_stream, range(200))
    lists = lists_until(server_settings.bootstrap, names.recommendations, reflects(sent_last))
    assert sent_last.items() <= newest(lists).items()  # every user's newest list reflects their newest event
    assert {(e["model_version"], e["model_version_name"]) for e in lists} == {(second.version(), "b")}
    time.sleep(3)  # three polls of the model folder
    assert served(port) == (second.version(), "b") and "swapped" not in worker.log()
