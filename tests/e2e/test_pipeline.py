"""End to end against the real local broker and Bolt server: real events (ML-100K, with generated repeats so that
edges are counted more than once; plus malformed records) go through a worker process into the graph and out as
lists; a re-delivery of processed records changes no count."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict
from dataclasses import replace

import pytest

from graph_store import GraphStore
from stream.replay import make_producer, replay
from stream.topics import TopicNames
from streamrec.tools.replay_source import item_records

import real_events
from conftest import consume_until  # noqa: F401 (the other end-to-end tests import it from here)

N_EVENTS = 3000
MALFORMED = [  # (value, expected reason)
    (b"{not json", "not_json"),
    (b'"just a string"', "not_object"),
    (
        json.dumps({"event_id": "m1", "user_id": "", "item_id": "i", "type": "view", "ts": 1_600_000_000_000}).encode(),
        "missing_field",
    ),
    (
        json.dumps(
            {"event_id": "m2", "user_id": "u" * 300, "item_id": "i", "type": "view", "ts": 1_600_000_000_000}
        ).encode(),
        "bad_id",
    ),
    (
        json.dumps(
            {"event_id": "m3", "user_id": "u\x00", "item_id": "i", "type": "view", "ts": 1_600_000_000_000}
        ).encode(),
        "bad_id",
    ),
    (
        json.dumps(
            {"event_id": "m4", "user_id": "u", "item_id": "i", "type": "like", "ts": 1_600_000_000_000}
        ).encode(),
        "unknown_type",
    ),
    (json.dumps({"event_id": "m5", "user_id": "u", "item_id": "i", "type": "view", "ts": "noon"}).encode(), "bad_ts"),
    (
        json.dumps({"event_id": "m6", "user_id": "u", "item_id": "i", "type": "view", "ts": 900_000_000_000}).encode(),
        "ts_out_of_range",
    ),
    (
        json.dumps(
            {"event_id": "m7", "user_id": "u", "item_id": "i", "type": "view", "ts": 4_000_000_000_000}
        ).encode(),
        "ts_out_of_range",
    ),
]


@pytest.fixture(scope="module")
def events():
    """3,000 real events in time order: ML-100K spread over the data set (about 800 users), with generated repeats
    (real_events.with_repeats): edges with a count of 2 and pairs with two types, as a store's stream has."""
    data = real_events.first(real_events.with_repeats(real_events.spread(2600)), N_EVENTS)
    assert len(data) == N_EVENTS
    return data


def graph_edges(settings, users: list[str]) -> dict:
    async def read():
        async with GraphStore.from_settings(settings) as store:
            edges = []
            for start in range(0, len(users), 1000):
                edges += await store.edges_of_users(users[start : start + 1000])
            return edges

    return {(e["user"], e["item"], e["type"]): (e["count"], e["first_ts"], e["last_ts"]) for e in asyncio.run(read())}


def expected_edges(users, items, types, ts) -> dict:
    """(user, item, type) -> (count, first_ts, last_ts), as the graph store must hold them."""
    edges = defaultdict(lambda: [0, None, None])
    for user, item, kind, t in zip(users, items, types, ts):
        entry = edges[(user, item, kind)]
        entry[0] += 1
        entry[1] = t if entry[1] is None else min(entry[1], t)
        entry[2] = t if entry[2] is None else max(entry[2], t)
    return {key: tuple(value) for key, value in edges.items()}


def scrape(port: int, name: str) -> float:
    from urllib.request import urlopen

    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def assert_both_processes_and_every_stage_are_measured(port: int) -> None:
    """One /metrics shows the event loop's and the model host's CPU and memory, and each stage of a batch."""
    for process in ("event_loop", "model_host"):
        assert scrape(port, f'streamrec_process_resident_memory_bytes{{process="{process}"}}') > 10 * 2**20, process
        assert scrape(port, f'streamrec_process_cpu_seconds_total{{process="{process}"}}') > 0, process
    for stage in ("intake", "arrival", "validate", "graph_upsert", "refresh", "rank", "publish"):
        assert scrape(port, f'streamrec_stage_seconds_count{{stage="{stage}"}}') > 0, stage
    assert scrape(port, 'streamrec_stage_seconds_bucket{le="60.0",stage="graph_upsert"}') > 0  # the worst case fits


LOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\[(event_loop|model_host)\] [\w.]+: "
)


def assert_one_log_format(log: str) -> None:
    """The worker's, Faust's and the model host's records share the text format; no terminal escapes, no
    warning of the timer that the periodic work overlapped."""
    lines = log.splitlines()
    assert [line for line in lines if not LOG_LINE.match(line)] == []
    assert {LOG_LINE.match(line)[2] for line in lines} == {"event_loop", "model_host"}
    assert any(" faust." in line for line in lines)
    assert "\x1b" not in log and "is overlapping" not in log


def test_events_flow_to_graph_lists_and_dead_letters_and_replays_change_nothing(
    events, server_settings, worker_factory, unique
):
    names = TopicNames.with_prefix(unique)
    env = {
        "STREAMREC_TOPIC_PREFIX": unique,
        "STREAMREC_APP_ID": unique + "app",
        "STREAMREC_BATCH_SIZE": "250",
        "STREAMREC_BATCH_WAIT_MS": "50",
    }
    worker = worker_factory(env).start()
    bootstrap = server_settings.bootstrap

    users = [unique + u for u in events.users[:N_EVENTS]]
    items = [unique + i for i in events.items[:N_EVENTS]]
    producer = make_producer(bootstrap)
    try:
        info = [
            replace(record, item_id=unique + record.item_id)
            for record in item_records(events, set(events.items[:N_EVENTS]))
        ]
        replay(
            producer,
            names,
            event_ids=[f"{unique}{k}" for k in range(N_EVENTS)],
            users=users,
            items=items,
            types=events.types[:N_EVENTS],
            ts=events.ts[:N_EVENTS],
            item_records=info,
        )
        for k, (value, _) in enumerate(MALFORMED):
            producer.send(names.interactions, key=f"{unique}bad{k}".encode(), value=value)
        producer.flush()
    finally:
        producer.close()

    expected_users = set(users)
    lists = consume_until(
        bootstrap, names.recommendations, lambda rs: {json.loads(r.value)["user_id"] for r in rs} >= expected_users
    )
    dead = consume_until(bootstrap, names.dead_letters, lambda rs: len(rs) >= len(MALFORMED))

    # every user with a valid event received a list, in the documented format
    assert {json.loads(r.value)["user_id"] for r in lists} == expected_users
    sample = json.loads(lists[-1].value)
    assert set(sample) == {
        "user_id",
        "items",
        "model",
        "model_version",
        "model_version_name",
        "last_event_id",
        "event_ts",
        "published_ts",
    }
    assert sample["model"] == "cooccurrence" and sample["model_version_name"] is None and 0 < len(sample["items"]) <= 20
    assert all(set(entry) >= {"item_id", "score"} for entry in sample["items"])
    assert lists[-1].key.decode() == sample["user_id"]

    # the dead-letter topic holds exactly the malformed records, with their reasons and original bytes
    assert sorted(json.loads(r.value)["reason"] for r in dead) == sorted(reason for _, reason in MALFORMED)
    import base64

    assert {base64.b64decode(json.loads(r.value)["original_base64"]) for r in dead} == {v for v, _ in MALFORMED}
    assert all(json.loads(r.value)["source"]["topic"] == names.interactions for r in dead)

    # every valid event is in the graph with the right counts and times
    expected = expected_edges(users, items, events.types[:N_EVENTS], events.ts[:N_EVENTS])
    assert any(count > 1 for count, _, _ in expected.values())  # the events do exercise the counting
    # the graph write runs behind the lists (the served model's observe is idempotent): the last write may still
    # be under way when the last list arrives
    port = int(worker.env["STREAMREC_METRICS_PORT"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        graph_edges(server_settings, sorted(expected_users)) != expected
        or scrape(port, 'streamrec_events_total{outcome="applied"') < N_EVENTS
    ):
        time.sleep(0.5)
    before = graph_edges(server_settings, sorted(expected_users))
    assert before == expected

    # replay: a worker whose consumer group has committed nothing gets every processed record delivered again,
    # exactly what a crash before the offset commit amounts to
    assert scrape(port, 'streamrec_events_total{outcome="applied"') == N_EVENTS
    assert_both_processes_and_every_stage_are_measured(port)
    assert_one_log_format(worker.log())
    worker.stop()
    again = worker_factory({**env, "STREAMREC_APP_ID": unique + "app-after-crash"}).start()
    port = int(again.env["STREAMREC_METRICS_PORT"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and scrape(port, 'streamrec_events_total{outcome="replayed"') < N_EVENTS:
        time.sleep(0.5)
    assert scrape(port, 'streamrec_events_total{outcome="replayed"') == N_EVENTS
    assert scrape(port, 'streamrec_events_total{outcome="applied"') == 0
    assert graph_edges(server_settings, sorted(expected_users)) == before


def test_a_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(
    events, server_settings, worker_factory, unique
):
    """SIGKILL while batches are in flight: only acked events may have been committed, so the next worker of the
    group gets the rest delivered again, and the graph's idempotence keeps every count exact."""
    import threading

    import psutil

    from streamrec.tools.bench import model_host_pid

    names = TopicNames.with_prefix(unique)
    # small batches: the kill must find the first worker mid-stream, not with everything taken in one batch
    env = {"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app", "STREAMREC_BATCH_SIZE": "100"}
    first = worker_factory(env).start()
    host_pid = model_host_pid(first.pid)
    assert host_pid is not None  # the model runs in its own process
    model_host = psutil.Process(host_pid)

    users = [unique + u for u in events.users[:N_EVENTS]]
    items = [unique + i for i in events.items[:N_EVENTS]]
    event_ids = [f"{unique}{k}" for k in range(N_EVENTS)]
    producer = make_producer(server_settings.bootstrap)
    sending = threading.Thread(
        target=replay,
        args=(producer, names),
        kwargs=dict(
            event_ids=event_ids,
            users=users,
            items=items,
            types=events.types[:N_EVENTS],
            ts=events.ts[:N_EVENTS],
            rate=600.0,
        ),
    )
    sending.start()
    port = int(first.env["STREAMREC_METRICS_PORT"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and scrape(port, 'streamrec_events_total{outcome="applied"') < N_EVENTS / 3:
        time.sleep(0.05)
    first.stop(kill=True)  # mid-stream, batches in flight
    model_host.wait(10)  # the model host exits with its worker (its pipe closed)
    second = worker_factory(env).start()  # the same consumer group resumes from the committed offsets
    sending.join()
    producer.close()

    expected = expected_edges(users, items, events.types[:N_EVENTS], events.ts[:N_EVENTS])
    port = int(second.env["STREAMREC_METRICS_PORT"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and graph_edges(server_settings, sorted(set(users))) != expected:
        time.sleep(1)
    assert graph_edges(server_settings, sorted(set(users))) == expected  # nothing lost, nothing counted twice
    assert 0 < scrape(port, 'streamrec_events_total{outcome="applied"') < N_EVENTS  # the second did the rest
    replayed = scrape(port, 'streamrec_events_total{outcome="replayed"')
    print(f"delivered again after the kill: {replayed:.0f} events")

    newest = {user: event_id for user, event_id in zip(users, event_ids)}

    def latest_lists(records) -> dict:  # a user's lists are on one partition, in order: the last one wins
        return {json.loads(r.value)["user_id"]: json.loads(r.value)["last_event_id"] for r in records}

    lists = consume_until(
        server_settings.bootstrap, names.recommendations, lambda records: latest_lists(records) == newest, timeout_s=60
    )
    assert latest_lists(lists) == newest  # every user's last list reflects the user's last event


def test_a_worker_whose_model_process_dies_exits_with_a_failure_status(server_settings, worker_factory, unique):
    """An orchestrator restarts what exits non-zero: a dead model process must not look like a clean stop."""
    import os
    import signal

    from streamrec.tools.bench import model_host_pid

    worker = worker_factory({"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app"}).start()
    host = model_host_pid(worker.pid)
    assert host is not None
    os.kill(host, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while worker.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.running()
    assert worker.process.returncode == 1
    assert "worker stopped: the model process died (exit status 1)" in worker.log()

    asked = worker_factory({"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app"}).start()
    asked.stop()  # SIGTERM: a stop that was asked for is a clean one
    assert asked.process.returncode == 0


def test_a_malformed_record_near_the_brokers_limit_goes_to_the_dead_letters_and_stalls_nothing(
    server_settings, worker_factory, unique
):
    """A record of ~1 MB used to make a dead letter over the producer's limit, retried forever behind it."""
    import base64
    import hashlib

    from kafka import KafkaProducer

    names = TopicNames.with_prefix(unique)
    worker_factory({"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app"}).start()
    huge = b"{" + b"x" * 1_000_000  # not JSON, and as large as a default broker takes
    producer = KafkaProducer(bootstrap_servers=server_settings.bootstrap, acks="all", max_request_size=1_048_576)
    try:
        producer.send(names.interactions, key=f"{unique}u0".encode(), value=huge).get(30)
        producer.send(
            names.interactions,
            key=f"{unique}u0".encode(),
            value=json.dumps(
                {
                    "event_id": f"{unique}e1",
                    "user_id": f"{unique}u0",
                    "item_id": f"{unique}i0",
                    "type": "view",
                    "ts": int(time.time() * 1000),
                }
            ).encode(),
        ).get(30)
    finally:
        producer.close()

    dead = consume_until(server_settings.bootstrap, names.dead_letters, lambda rs: len(rs) >= 1, timeout_s=60)
    assert len(dead) == 1
    record = json.loads(dead[0].value)
    assert (record["reason"], record["original_size"], record["original_truncated"]) == ("not_json", len(huge), True)
    assert record["original_sha256"] == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(base64.b64decode(record["original_base64"]))
    # the event behind it on the same partition was processed: nothing stalled
    lists = consume_until(server_settings.bootstrap, names.recommendations, lambda rs: len(rs) >= 1, timeout_s=60)
    assert [json.loads(r.value)["last_event_id"] for r in lists] == [f"{unique}e1"]
