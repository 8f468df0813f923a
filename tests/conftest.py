"""The test session starts its own Apache Kafka broker and Neo4j server (the default `apache` local stack) on free
loopback ports, under a temporary STREAMREC_HOME, prints their versions, and stops exactly those processes at
the end. `own_servers` gives a test servers of its own (to stop and restart them), of either stack;
`module_servers` gives one module's tests a pair they share and no other test touches.

The session's servers start lazily, when the first test that needs them runs: every test whose fixtures
include one of SERVER_FIXTURES is marked `servers` at collection, so `pytest -m "not servers"` (`make
test-fast`) starts no server at all, and a test of that tier that tries to start one fails and names the fix."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamrec.tools.live import WorkerProcess, free_port  # noqa: F401 (free_port is imported by test modules)

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Event:
    """The fields the graph store reads from an interaction (stream.events.Interaction has more)."""

    user_id: str
    item_id: str
    type: str
    ts: int
    partition: int
    offset: int
    topic: str = "interactions"


def get_json(port: int, path: str) -> tuple[int, dict]:
    """(status, JSON body) of a GET on a worker's HTTP port, error statuses included."""
    import json
    from urllib.error import HTTPError
    from urllib.request import urlopen

    try:
        with urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


def poison_edge(settings, user: str, item: str) -> None:
    """An INTERACTED edge whose count another tool wrote as a boolean: streamrec cannot add to it, ever."""
    import asyncio

    from graph_store import GraphStore

    async def write():
        async with GraphStore.from_settings(settings) as store:
            await store.ensure_schema()
            await store.driver.execute_query(
                "MERGE (u:User {id: $u}) MERGE (i:Item {id: $i}) "
                "MERGE (u)-[r:INTERACTED {type: 'view'}]->(i) SET r.count = true, r.last_source = 'elsewhere'",
                {"u": user, "i": item},
                database_=settings.database,
            )

    asyncio.run(write())


def consume_until(bootstrap: str, topic: str, done, timeout_s: float = 120.0) -> list:
    """Every record of `topic` from the start until `done(records)` holds or the time is up."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(records):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def wait_for(predicate, timeout_s: float = 60.0, interval_s: float = 0.5):
    """Polls until `predicate()` is truthy; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return predicate()


def stack_env(home: Path, stack: str) -> dict:
    """STREAMREC_* variables of local servers of `stack` under `home`, on free ports."""
    return {
        "STREAMREC_HOME": str(home),
        "STREAMREC_LOCAL_STACK": stack,
        "STREAMREC_LOCAL_KAFKA_PORT": str(free_port()),
        "STREAMREC_LOCAL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "STREAMREC_LOCAL_BOLT_PORT": str(free_port()),
        "STREAMREC_LOCAL_HTTP_PORT": str(free_port()),
        "STREAMREC_SESSION_TIMEOUT_S": "3",
        # a password of this run's own, with a space and a quote: what no command line or log may show
        "STREAMREC_NEO4J_PASSWORD": f'pw "{uuid.uuid4().hex[:12]}" x',
    }


def secret_exposures(env: dict, pids: list[int], folders: list[Path]) -> list[str]:
    """Where the graph password of `env` can be read by someone other than its owner: the command lines of
    `pids` and their descendants (world-readable in /proc), and every file under `folders` (logs)."""
    secret = env["STREAMREC_NEO4J_PASSWORD"].encode()
    found = []
    for pid in descendants(pids):
        try:
            if secret in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(f"the command line of pid {pid}")
        except OSError:
            pass
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if path.is_file() and secret in path.read_bytes():
                found.append(str(path))
    return found


def descendants(pids: list[int]) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    found, frontier = set(pids), set(pids)
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# The fixtures that start servers (`server_env`: the session's; `own_servers`: a test's own; `module_servers`: one
# module's). A fixture that uses one (`server_settings`, `worker_factory`) brings it into the test's fixture
# closure, so it counts too.
SERVER_FIXTURES = frozenset({"server_env", "own_servers", "module_servers"})


def pytest_collection_modifyitems(config, items):
    """Marks `servers` every test that needs the local Kafka and Bolt servers, directly or through fixtures."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(autouse=True)
def no_server_unless_marked(request, monkeypatch):
    """A test outside the `servers` tier that starts a local server fails at once and says how to mark it, so
    `-m "not servers"` stays a tier without servers."""
    if request.node.get_closest_marker("servers") is not None:
        return
    from streamrec.tools.servers.base import LocalService

    def refuse(self, *args, **kwargs):
        raise AssertionError(
            f"{request.node.nodeid} starts the local {self.name} but is not marked `servers`: use the "
            "`server_env` or `own_servers` fixture (marked automatically) or `@pytest.mark.servers`"
        )

    monkeypatch.setattr(LocalService, "start", refuse)


@pytest.fixture(autouse=True)
def root_logging_restored():
    """A test that runs the CLI in-process configures logging (streamrec.runtime.logs): the next test gets the
    root logger's handlers and level back, so what it captures does not depend on the order of the tests."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def server_env(tmp_path_factory, request) -> dict:
    """STREAMREC_* variables of a running local broker and Bolt server, for this test session only."""
    from streamrec.tools.servers import services_down, services_up
    from streamrec.runtime.settings import load_settings

    env = stack_env(tmp_path_factory.mktemp("streamrec-home"), "apache")
    settings = load_settings(env)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled():
            print("\nlocal servers of this test session:")
            services_up(settings)
        yield env
    finally:
        services_down(settings, out=io.StringIO())


@pytest.fixture
def own_servers(tmp_path):
    """Servers of one test alone, which it may stop and restart: `make(stack)` starts a broker and a graph
    server and returns (env, settings, broker, graph); all are stopped when the test ends."""
    from streamrec.tools.servers import local_services
    from streamrec.runtime.settings import load_settings

    started = []

    def make(stack: str = "apache"):
        env = stack_env(tmp_path / f"home-{len(started)}", stack)
        settings = load_settings(env)
        broker, graph = local_services(settings)
        for service in (broker, graph):
            service.start()
            started.append(service)
        return env, settings, broker, graph

    yield make
    for service in reversed(started):
        service.stop()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory):
    """(env, settings) of a broker and a graph server that the tests of one module share and no other test
    touches: for tests whose workers warm-start from the whole graph, or that empty it, yet stop no server (a
    test that does gets `own_servers`). Starting one pair for the module instead of one per test saves a start
    of both servers (tens of seconds on 2 cores) for each test after the first."""
    from streamrec.tools.servers import local_services
    from streamrec.runtime.settings import load_settings

    env = stack_env(tmp_path_factory.mktemp("module-servers"), "apache")
    settings = load_settings(env)
    started = []
    try:
        for service in local_services(settings):
            service.start()
            started.append(service)
        yield env, settings
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="session")
def server_settings(server_env):
    from streamrec.runtime.settings import load_settings

    return load_settings(server_env)


@pytest.fixture
def unique() -> str:
    """A prefix that keeps one test's topics, consumer group and graph ids apart from another's."""
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def worker_factory(server_env, tmp_path):
    workers: list[WorkerProcess] = []

    def make(extra_env: dict) -> WorkerProcess:
        env = {**server_env, "STREAMREC_METRICS_PORT": str(free_port()), **extra_env}
        worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()
