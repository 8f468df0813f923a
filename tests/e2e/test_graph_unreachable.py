"""A worker joins its consumer group only when it can write to the graph server, and leaves it when it cannot
write for longer than STREAMREC_WRITE_STALL_LEAVE_S, so its partitions move to a worker that can (issue 27).

Two workers of one group share the session's servers; one of them reaches the graph server through a TCP
forwarder of the test's, which the test cuts and restores: the graph server is down for that worker alone.
Before, a worker that could not write joined (or stayed in) the group, took partitions and processed nothing."""

from __future__ import annotations

import json
import socket
import threading
import time

from conftest import get_json, wait_for
from e2e.test_pipeline import consume_until, expected_edges, graph_edges, scrape
from stream.replay import make_producer, replay
from stream.topics import TopicNames

N_EVENTS = 400
N_USERS = 61


class Forwarder:
    """127.0.0.1:port -> 127.0.0.1:target, one pair of threads a connection. `cut()` closes the listening socket
    and every connection: the worker behind it sees its connections reset and new ones refused."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        with socket.socket() as s:  # a free port, nothing listening on it until start()
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener, self._cut = listener, False
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the accepting thread: a close alone leaves it blocked, and accepting, on Linux
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut:  # accepted while being cut
                    client.close()
                    server.close()
                    return
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def partitions(worker) -> int:
    """The partitions of `interactions` the consumer group gave the worker (its gauge; -1: no answer)."""
    try:
        return int(scrape(worker.metrics_port, "streamrec_assigned_partitions "))
    except OSError:
        return -1


def send_events(bootstrap: str, unique: str) -> tuple[list[str], list[str], list[str], list[int]]:
    users = [f"{unique}u{k % N_USERS}" for k in range(N_EVENTS)]  # keyed by user: every partition gets some
    items = [f"{unique}i{k % 37}" for k in range(N_EVENTS)]
    types, ts = ["click"] * N_EVENTS, [1_700_000_000_000 + k for k in range(N_EVENTS)]
    event_ids = [f"{unique}{k}" for k in range(N_EVENTS)]
    producer = make_producer(bootstrap)
    replay(producer, TopicNames.with_prefix(unique), event_ids=event_ids, users=users, items=items, types=types, ts=ts)
    producer.flush()
    producer.close()
    return users, items, types, ts


def every_user_listed_with_the_last_event(bootstrap: str, unique: str, users: list[str]) -> None:
    newest = {user: f"{unique}{k}" for k, user in enumerate(users)}

    def latest(records) -> dict:
        return {json.loads(r.value)["user_id"]: json.loads(r.value)["last_event_id"] for r in records}

    lists = consume_until(bootstrap, TopicNames.with_prefix(unique).recommendations, lambda rs: latest(rs) == newest)
    assert latest(lists) == newest


def group_env(unique: str, **settings: str) -> dict:
    return {
        "STREAMREC_TOPIC_PREFIX": unique,
        "STREAMREC_APP_ID": unique + "app",
        "STREAMREC_PARTITIONS": "4",
        **{f"STREAMREC_{name.upper()}": value for name, value in settings.items()},
    }


def test_a_worker_that_cannot_reach_the_graph_server_waits_outside_the_group_and_joins_once_it_can(
    server_settings, worker_factory, unique
):
    forwarder = Forwarder(server_settings.local_bolt_port)  # not started: nothing answers on its port
    env = group_env(unique)
    serving = worker_factory(env).start(until_ready=True)
    waiting = worker_factory({**env, "STREAMREC_LOCAL_BOLT_PORT": str(forwarder.port)})
    waiting.launch()
    try:
        assert wait_for(lambda: "not joining the consumer group until it does" in waiting.log(), 90), waiting.log()
        users, items, types, ts = send_events(server_settings.bootstrap, unique)
        # the serving worker holds every partition and writes every event; the waiting one holds none
        expected = expected_edges(users, items, types, ts)
        assert wait_for(lambda: graph_edges(server_settings, sorted(set(users))) == expected, 120)
        assert (partitions(serving), partitions(waiting)) == (4, 0)
        code, body = get_json(waiting.metrics_port, "/readyz")
        assert (code, body["graph"], body["model_loaded"], body["broker"]) == (503, False, False, True)
        assert get_json(waiting.metrics_port, "/healthz") == (200, {"alive": True})  # waiting is not stuck
        assert scrape(waiting.metrics_port, "streamrec_graph_write_stall_seconds") > 0
        assert waiting.running() and "Worker]: Ready" not in waiting.log()

        forwarder.start()  # the graph server answers this worker now: it joins and takes its share
        assert wait_for(lambda: (partitions(serving), partitions(waiting)) == (2, 2), 90)
        assert wait_for(waiting.ready, 60)
    finally:
        forwarder.cut()
    log = waiting.log()
    assert log.count("not joining the consumer group until it does") == 1
    assert log.count("takes writes, after ") == 1 and "Traceback" not in log
    assert serving.running()


def test_a_worker_that_cannot_write_leaves_the_group_and_another_writes_every_event_once(
    server_settings, worker_factory, unique
):
    forwarder = Forwarder(server_settings.local_bolt_port)
    forwarder.start()
    env = group_env(unique, write_stall_leave_s="5")
    serving = worker_factory(env).start(until_ready=True)
    cut_off = worker_factory({**env, "STREAMREC_LOCAL_BOLT_PORT": str(forwarder.port)}).start(until_ready=True)
    assert wait_for(lambda: (partitions(serving), partitions(cut_off)) == (2, 2), 60)

    forwarder.cut()  # the graph server is gone for this worker alone, with its partitions' events coming
    started = time.monotonic()
    users, items, types, ts = send_events(server_settings.bootstrap, unique)
    cut_off.process.wait(90)
    took = time.monotonic() - started
    log = cut_off.log()
    assert cut_off.process.returncode == 3, log[-3000:]
    assert "graph_upsert failing: " in log  # it did hold partitions with events it could not write
    leaving = [line for line in log.splitlines() if "leaving the consumer group" in line]
    assert len(leaving) == 1 and "STREAMREC_WRITE_STALL_LEAVE_S=5" in leaving[0], leaving
    assert 5 <= took < 5 + 10 + 30  # the limit, the stop's grace time, slack for a busy machine

    # the partitions moved: the serving worker writes every event once (what the other did not write was not
    # acked, so it was delivered again) and lists every user with the user's last event
    assert wait_for(lambda: partitions(serving) == 4, 60)
    expected = expected_edges(users, items, types, ts)
    assert wait_for(lambda: graph_edges(server_settings, sorted(set(users))) == expected, 120)
    every_user_listed_with_the_last_event(server_settings.bootstrap, unique, users)
    assert serving.running()
    assert scrape(serving.metrics_port, "streamrec_graph_write_stall_seconds") < 5
