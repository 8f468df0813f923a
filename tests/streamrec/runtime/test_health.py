"""The worker's /healthz and /readyz against real servers that go down and come back; a batch that arrives
while the graph server is down is retried, not lost, and Neo4j restarted keeps every edge."""

import asyncio
import time
from urllib.request import urlopen

from conftest import get_json as get, wait_for
from graph_store import GraphStore
from stream.events import interaction_value
from stream.replay import make_producer
from stream.topics import TopicNames


def scrape(port: int, prefix: str) -> float:
    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_readiness_follows_the_servers_and_no_batch_is_lost_while_the_graph_is_down(
    own_servers, worker_factory, unique
):
    env, settings, broker, graph = own_servers()
    # the worker rides out the graph server's restart (tens of seconds on a busy machine) instead of leaving its
    # group: leaving is tested in tests/e2e/test_graph_unreachable.py
    worker = worker_factory({**env, "STREAMREC_APP_ID": unique + "app", "STREAMREC_WRITE_STALL_LEAVE_S": "0"}).start()
    port = int(worker.env["STREAMREC_METRICS_PORT"])

    assert wait_for(lambda: get(port, "/readyz")[0] == 200)
    assert get(port, "/healthz") == (200, {"alive": True})
    assert b"streamrec_model_info" in urlopen(f"http://127.0.0.1:{port}/metrics").read()

    graph.stop()
    code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(port, "/readyz")))
    assert (code, body["graph"], body["broker"]) == (503, False, True)
    assert get(port, "/healthz")[0] == 200  # down dependencies make it unready, not dead

    names = TopicNames.with_prefix("")
    producer = make_producer(settings.bootstrap)
    now = int(time.time() * 1000)
    for k in range(50):
        producer.send(
            names.interactions,
            key=f"{unique}u{k % 5}".encode(),
            value=interaction_value(f"{unique}{k}", f"{unique}u{k % 5}", f"{unique}i{k % 7}", "view", now),
        )
    producer.flush()
    producer.close()
    time.sleep(3)  # the worker is retrying the batch against the missing graph server

    graph.start()
    assert wait_for(lambda: get(port, "/readyz")[0] == 200)

    async def stored_events():
        async with GraphStore.from_settings(settings) as store:
            return sum(e["count"] for e in await store.edges_of_users([f"{unique}u{k}" for k in range(5)]))

    assert wait_for(lambda: asyncio.run(stored_events()) == 50, timeout_s=60)
    # every attempt against the missing server counted (the driver's own retries are off) ...
    assert scrape(port, 'streamrec_batch_retries_total{stage="graph_upsert"}') >= 4
    # ... and the operator reads one line per change of state, not one per attempt or probe
    log = worker.log()
    assert (log.count("not ready: the graph server does not answer"), log.count("the graph server answers again")) == (
        1,
        1,
    )
    assert (log.count("graph_upsert failing: "), log.count("graph_upsert works again, after ")) == (1, 1)
    assert "Transaction failed" not in log and "AuthError" not in log and "Traceback" not in log

    graph.stop()  # Neo4j keeps its store across a restart: nothing written is lost
    graph.start()
    assert asyncio.run(stored_events()) == 50
    assert wait_for(lambda: get(port, "/readyz")[0] == 200)

    broker.stop()
    code, body = wait_for(lambda: (lambda r: r if r[0] == 503 and not r[1]["broker"] else None)(get(port, "/readyz")))
    assert (code, body["broker"]) == (503, False)
    worker.stop(kill=True)
