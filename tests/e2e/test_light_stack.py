"""The light stack (STREAMREC_LOCAL_STACK=light: the PyPI stand-ins Tansu and ArcadeDB, for machines without
Java) keeps working: events reach the graph with exact counts, every user gets a list, a bad record its dead
letter; its graph password shows on no command line and in no log line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from stream.replay import make_producer, replay
from stream.topics import TopicNames

import real_events
from conftest import secret_exposures
from test_pipeline import consume_until, expected_edges, graph_edges

N_EVENTS = 500


def test_events_flow_end_to_end_on_the_light_stack(own_servers, worker_factory, unique, tmp_path):
    env, settings, broker, graph = own_servers("light")
    assert (broker.name, graph.name) == ("tansu", "arcadedb")
    data = real_events.first(real_events.spread(N_EVENTS), N_EVENTS)
    users = [unique + u for u in data.users]
    items = [unique + i for i in data.items]
    names = TopicNames.with_prefix(unique)
    worker = worker_factory(
        {**env, "STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app", "STREAMREC_LOG_LEVEL": "debug"}
    ).start()

    producer = make_producer(settings.bootstrap)
    try:
        replay(
            producer,
            names,
            event_ids=[f"{unique}{k}" for k in range(N_EVENTS)],
            users=users,
            items=items,
            types=data.types,
            ts=data.ts,
        )
        producer.send(names.interactions, key=b"bad", value=b"{not json")
        producer.flush()
    finally:
        producer.close()

    lists = consume_until(
        settings.bootstrap, names.recommendations, lambda rs: {json.loads(r.value)["user_id"] for r in rs} >= set(users)
    )
    assert {json.loads(r.value)["user_id"] for r in lists} == set(users)
    dead = consume_until(settings.bootstrap, names.dead_letters, lambda rs: len(rs) >= 1)
    assert [json.loads(r.value)["reason"] for r in dead] == ["not_json"]
    expected = expected_edges(users, items, data.types, data.ts)
    deadline = time.monotonic() + 60  # the graph write runs behind the lists: the last one may still be under way
    while time.monotonic() < deadline and graph_edges(settings, sorted(set(users))) != expected:
        time.sleep(0.5)
    assert graph_edges(settings, sorted(set(users))) == expected
    assert secret_exposures(env, [broker.pid(), graph.pid(), worker.pid], [Path(env["STREAMREC_HOME"]), tmp_path]) == []
