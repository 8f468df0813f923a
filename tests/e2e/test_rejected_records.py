"""A valid event the graph server refuses for good (here: its edge's count was written as a boolean by another
tool) used to be retried forever and stall its partition. Now it goes to the dead letters with the server's
reason after a few attempts, and every other event, before and after it on the same partition, is applied."""

from __future__ import annotations

import json
import time

from stream.events import interaction_value
from stream.replay import make_producer
from stream.topics import TopicNames

from conftest import poison_edge, wait_for
from test_pipeline import consume_until, graph_edges, scrape

N_EVENTS = 40


def test_a_record_the_graph_refuses_for_good_goes_to_the_dead_letters_and_the_partition_flows(
    server_settings, worker_factory, unique
):
    names = TopicNames.with_prefix(unique)
    user, poisoned = unique + "u0", unique + "poisoned"
    poison_edge(server_settings, user, poisoned)
    worker = worker_factory(
        {"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app", "STREAMREC_PARTITIONS": "1"}
    ).start()
    producer = make_producer(server_settings.bootstrap)
    now = int(time.time() * 1000)
    sent = []
    for k in range(N_EVENTS):  # one partition: the refused events sit between good ones of the same user
        item = poisoned if k in (10, 25) else f"{unique}i{k % 9}"
        producer.send(
            names.interactions, key=user.encode(), value=interaction_value(f"{unique}{k}", user, item, "view", now + k)
        )
        sent.append(item)
    producer.flush()
    producer.close()

    dead = consume_until(server_settings.bootstrap, names.dead_letters, lambda rs: len(rs) >= 2, timeout_s=120)
    letters = [json.loads(r.value) for r in dead]
    assert [(d["reason"], d["source"]["offset"]) for d in letters] == [("graph_rejected", 10), ("graph_rejected", 25)]
    assert all("Neo.ClientError.Statement" in d["detail"] for d in letters)

    edges = graph_edges(server_settings, [user])
    expected = {}
    for item in sent:
        if item != poisoned:
            expected[item] = expected.get(item, 0) + 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and {i: c for (_, i, _), (c, _, _) in edges.items() if i != poisoned} != expected:
        time.sleep(0.5)
        edges = graph_edges(server_settings, [user])
    assert {i: c for (_, i, _), (c, _, _) in edges.items() if i != poisoned} == expected
    lists = consume_until(
        server_settings.bootstrap,
        names.recommendations,
        lambda rs: any(json.loads(r.value)["last_event_id"] == f"{unique}{N_EVENTS - 1}" for r in rs),
    )
    assert lists
    port = worker.metrics_port
    assert scrape(port, 'streamrec_dead_letters_total{reason="graph_rejected"}') == 2
    assert wait_for(lambda: scrape(port, 'streamrec_events_total{outcome="dead_letter",type="view"}') == 2, 30)
    assert "rejected the record at" in worker.log() and "Traceback" not in worker.log()
