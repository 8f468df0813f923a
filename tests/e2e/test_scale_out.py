"""Three workers in one consumer group give every user the list one worker gives for the same events, once the
stream is drained and the background refresh is done: each worker's model follows every partition
(stream/replica.py), and every model a worker can serve has a state that is a function of the graph's edges (the
temporal GAT's embeddings, the co-occurrence baseline's recent sets and counts), whatever the order in which the
partitions' events arrive. Compared for every user, for each servable model, on Apache Kafka + Neo4j, through
GET /recommendations/{user} of each worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import replace
from urllib.parse import quote
from http.client import HTTPConnection
from urllib.request import urlopen

import pytest

from graph_store import GraphStore
from stream.replay import make_producer, replay
from stream.topics import TopicNames
from streamrec.tools.live import FreshnessTracker, ListCollector, WorkerProcess, free_port, quantile, wait_for_items

import real_events
from test_model_serving import tiny_model
from test_pipeline import expected_edges, graph_edges, scrape

N_EVENTS = 2_000
SCORE_TOLERANCE = 1e-4


@pytest.fixture
def servers(module_servers):
    """(env, settings) of this module's servers with an empty graph: each test starts as on servers of its own
    (its workers warm-start from the whole graph), without starting a pair of its own."""
    env, settings = module_servers
    asyncio.run(empty_graph(settings))
    return env, settings


async def empty_graph(settings) -> None:
    async with GraphStore.from_settings(settings) as store:
        await store.delete_everything()


def drained(workers: list[WorkerProcess], n_events: int) -> bool:
    """Every event processed by its owner, followed by every model, and no embedding awaiting its refresh."""
    ports = [w.metrics_port for w in workers]
    processed = sum(
        scrape(p, 'streamrec_events_total{outcome="applied"') + scrape(p, 'streamrec_events_total{outcome="replayed"')
        for p in ports
    )
    return processed >= n_events and all(
        scrape(p, "streamrec_consumer_lag_events") == 0
        and scrape(p, "streamrec_follow_lag_events") == 0
        and scrape(p, "streamrec_stale_nodes") == 0
        for p in ports
    )


def lists_of(
    worker: WorkerProcess, users: list[str], models: Counter | None = None
) -> dict[str, list[tuple[str, float]]]:
    """Every user's list from this worker's own model (`routed=1`: answered here, not redirected to the owner);
    `models` counts the model named in each answer."""
    lists = {}
    for user in users:
        path = f"/recommendations/{quote(user, safe='')}?routed=1"
        with urlopen(f"http://127.0.0.1:{worker.metrics_port}{path}", timeout=30) as r:
            record = json.loads(r.read())
        lists[user] = [(i["item_id"], i["score"]) for i in record["items"]]
        if models is not None:
            models[record["model"]] += 1
    return lists


def answers_for(workers: list[WorkerProcess], user: str) -> list[tuple[int, str | None]]:
    """(status, Location) of GET /recommendations/{user} on each worker, redirects not followed."""
    answers = []
    for worker in workers:
        connection = HTTPConnection("127.0.0.1", worker.metrics_port, timeout=30)
        connection.request("GET", f"/recommendations/{quote(user, safe='')}")
        response = connection.getresponse()
        response.read()
        answers.append((response.status, response.getheader("Location")))
        connection.close()
    return answers


def same_list(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """The same top-K up to ties: scores equal rank by rank within the tolerance, and an item in one list only
    scores within the tolerance of that list's last score (two items tied at the cut may fall either side of it).
    The decayed popularity sums are float64 and a worker that followed the stream adds its terms in another order
    than one that read the graph at once, so exact ties come out a few ulps apart and either way round."""
    if len(a) != len(b):
        return False
    if any(abs(x - y) > SCORE_TOLERANCE for (_, x), (_, y) in zip(a, b)):
        return False
    only_a, only_b = {i for i, _ in a} - {i for i, _ in b}, {i for i, _ in b} - {i for i, _ in a}
    return all(abs(s - a[-1][1]) <= SCORE_TOLERANCE for i, s in a if i in only_a) and all(
        abs(s - b[-1][1]) <= SCORE_TOLERANCE for i, s in b if i in only_b
    )


def list_difference(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> dict:
    """What a failed same_list shows: the items of each list that the other lacks or scores otherwise."""
    scores_a, scores_b = dict(a), dict(b)
    return {
        "only_first": [(i, s) for i, s in a if i not in scores_b],
        "only_second": [(i, s) for i, s in b if i not in scores_a],
        "score_gaps": [(i, s, scores_b[i]) for i, s in a if i in scores_b and abs(s - scores_b[i]) > SCORE_TOLERANCE],
        "last_scores": (a[-1][1] if a else None, b[-1][1] if b else None),
    }


def run_group(env: dict, bootstrap: str, prefix: str, n_workers: int, data, users, items, tmp_path) -> dict:
    """`n_workers` workers in the group `prefix + "app"` on the topics of `prefix`: their lists once drained."""
    names, app_id, workers = TopicNames.with_prefix(prefix), prefix + "app", []
    try:
        for k in range(n_workers):
            worker_env = {
                **env,
                "STREAMREC_TOPIC_PREFIX": prefix,
                "STREAMREC_APP_ID": app_id,
                "STREAMREC_METRICS_PORT": str(free_port()),
            }
            workers.append(WorkerProcess(worker_env, tmp_path / f"{app_id}-{k}.log").start(until_ready=True))
        producer = make_producer(bootstrap)
        try:
            replay(
                producer,
                names,
                event_ids=[f"{app_id}-{k}" for k in range(len(users))],
                users=users,
                items=items,
                types=data.types,
                ts=data.ts,
                # item records too: the worker that consumes an item's partition is not the only one that ranks it
                item_records=[
                    replace(data.item_info[raw], item_id=named) for raw, named in dict(zip(data.items, items)).items()
                ],
            )
        finally:
            producer.close()
        wait_for_items([w.metrics_port for w in workers], len(set(items)))
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not drained(workers, len(users)):
            time.sleep(1)
        assert drained(workers, len(users)), [w.log()[-2000:] for w in workers]
        owners = [scrape(w.metrics_port, 'streamrec_events_total{outcome="applied"') for w in workers]
        assert sum(owners) == len(users)  # each event applied once, by its partition's owner
        routes = {user: answers_for(workers, user) for user in sorted(set(users))[:30]}
        models = Counter()
        return {k: lists_of(worker, sorted(set(users)), models) for k, worker in enumerate(workers)} | {
            "owners": owners,
            "routes": routes,
            "ports": [w.metrics_port for w in workers],
            "models": models,
        }
    finally:
        for worker in workers:
            worker.stop()


@pytest.mark.parametrize("served", ["temporal_gat", "cooccurrence"])
def test_three_workers_converge_to_the_lists_of_one(servers, unique, tmp_path, served):
    """Every model a worker can serve: the temporal GAT from a checkpoint, and the co-occurrence baseline that a
    worker serves when there is none (an empty STREAMREC_MODEL_DIR, no STREAMREC_MODEL_VERSION)."""
    env, settings = servers
    data = real_events.first(real_events.spread(N_EVENTS), N_EVENTS)
    users = [unique + u for u in data.users]
    items = [unique + i for i in data.items]
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    if served == "temporal_gat":
        tiny_model(data, 7, unique).save(model_dir / "v1")
        pin, expected_model = {"STREAMREC_MODEL_VERSION": "v1"}, "streamrec"
    else:
        pin, expected_model = {}, "cooccurrence"
        env = {k: v for k, v in env.items() if k != "STREAMREC_MODEL_VERSION"}
    # 6 partitions: Faust's assignor fills each worker up to ceil(partitions / workers), so 4 over 3 is 2/2/0
    env = {
        **env,
        **pin,
        "STREAMREC_MODEL_DIR": str(model_dir),
        "STREAMREC_BATCH_SIZE": "200",
        "STREAMREC_PARTITIONS": "6",
    }

    one = run_group(env, settings.bootstrap, unique + "one-", 1, data, users, items, tmp_path)

    asyncio.run(empty_graph(settings))  # the second group starts from the same empty graph, on topics of its own
    three = run_group(env, settings.bootstrap, unique + "three-", 3, data, users, items, tmp_path)

    assert all(count > 0 for count in three["owners"]), three["owners"]  # the three workers shared the partitions
    assert set(one["models"]) == set(three["models"]) == {expected_model}, (one["models"], three["models"])
    reference = one[0]
    for k in range(3):
        differing = [u for u in reference if not same_list(reference[u], three[k][u])]
        assert differing == [], (k, [(u, list_difference(reference[u], three[k][u])) for u in differing[:3]])
    assert all(len(lst) > 0 for lst in reference.values())
    # any worker may be asked for a user: its partition's owner answers, the other two redirect there
    for user, answers in three["routes"].items():
        statuses = [status for status, _ in answers]
        assert sorted(statuses) == [200, 307, 307], (user, answers)
        owner_port = three["ports"][statuses.index(200)]
        assert all(
            location.startswith(f"http://127.0.0.1:{owner_port}/recommendations/") and "routed=1" in location
            for status, location in answers
            if status == 307
        ), (user, answers)


def test_workers_that_join_die_and_leave_mid_stream_lose_nothing_and_converge_again(servers, unique, tmp_path):
    """Two workers take a stream at 150 events/s; a third joins at a quarter, one is SIGKILLed (with its model
    process) at half, one stops gracefully at three quarters. Every edge ends exact, every user has a list, and
    the survivor's lists equal those of a fresh worker that read the whole stream again."""
    env, settings = servers
    n = 3_000
    data = real_events.first(real_events.spread(n), n)
    users, items = [unique + u for u in data.users], [unique + i for i in data.items]
    event_ids = [f"{unique}{k}" for k in range(n)]
    model_dir = tmp_path / "models"
    tiny_model(data, 7, unique).save(model_dir / "v1")
    names = TopicNames.with_prefix(unique)
    base = {
        **env,
        "STREAMREC_MODEL_DIR": str(model_dir),
        "STREAMREC_MODEL_VERSION": "v1",
        "STREAMREC_BATCH_SIZE": "100",
        "STREAMREC_PARTITIONS": "6",
        "STREAMREC_TOPIC_PREFIX": unique,
    }

    def worker(app_id: str) -> WorkerProcess:
        return WorkerProcess(
            {**base, "STREAMREC_APP_ID": app_id, "STREAMREC_METRICS_PORT": str(free_port())},
            tmp_path / f"{app_id}-{free_port()}.log",
        )

    group = unique + "app"
    workers = [worker(group).start(until_ready=True) for _ in range(2)]
    tracker = FreshnessTracker(event_ids, users)
    collector = ListCollector(settings.bootstrap, names.recommendations, tracker.on_list, {})
    collector.start()
    producer = make_producer(settings.bootstrap)
    sending = threading.Thread(
        target=replay,
        args=(producer, names),
        kwargs=dict(
            event_ids=event_ids,
            users=users,
            items=items,
            types=data.types,
            ts=data.ts,
            rate=150.0,
            sent_times=tracker.sent_times,
        ),
    )
    sending.start()
    moments = {}
    try:
        for fraction, what in ((0.25, "join"), (0.5, "kill -9"), (0.75, "graceful stop")):
            while len(tracker.sent_times) < fraction * n:
                time.sleep(0.05)
            moments[what] = time.time()
            if what == "join":  # started beside the stream: its start-up must not hold up the next steps
                workers.append(worker(group))
                threading.Thread(target=workers[-1].start, daemon=True).start()
            elif what == "kill -9":
                workers[0].stop(kill=True)
            else:
                workers[1].stop()
        sending.join()
        producer.close()

        expected = expected_edges(users, items, data.types, data.ts)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and graph_edges(settings, sorted(set(users))) != expected:
            time.sleep(1)
        assert graph_edges(settings, sorted(set(users))) == expected  # nothing lost, nothing counted twice
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not tracker.users_with_lists >= set(users):
            time.sleep(0.5)
        assert tracker.users_with_lists >= set(users)

        sent = tracker.sent_times
        for what, at in moments.items():  # the freshness of the events sent in the 10 s after each change
            window = sorted(f for k, f in tracker.by_event.items() if at <= sent[k] < at + 10)
            assert window, what  # the change happened while events were being sent
            print(f"freshness around the {what}: p99 {quantile(window, 0.99):.2f} s over {len(window)} events")

        survivor = workers[2]
        reference = worker(unique + "reference").start(until_ready=True)  # its own group: reads everything again
        workers.append(reference)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not drained([survivor, reference], n):
            time.sleep(1)
        assert drained([survivor, reference], n)
        assert graph_edges(settings, sorted(set(users))) == expected  # the re-read was all replays
        everyone = sorted(set(users))
        survivor_lists, reference_lists = lists_of(survivor, everyone), lists_of(reference, everyone)
        differing = [u for u in everyone if not same_list(survivor_lists[u], reference_lists[u])]
        assert differing == [], [(u, list_difference(survivor_lists[u], reference_lists[u])) for u in differing[:3]]
    finally:
        collector.stop()
        for w in workers:
            w.stop()
