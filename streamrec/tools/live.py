"""Pieces for driving a live pipeline from outside (the demo, the benchmark, the tests): a worker process,
a consumer of the lists, a scrape of a worker's /metrics."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.request import urlopen

import orjson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(base, home: Path) -> dict:
    """STREAMREC_* variables for a run of its own: the caller's settings, plus — when the servers are the
    local ones — an emptied home folder and free ports, so the run starts on a fresh graph and broker.
    Real servers (STREAMREC_KAFKA_BOOTSTRAP / _NEO4J_URI) are kept as they are."""
    env = {k: v for k, v in os.environ.items() if k.startswith("STREAMREC_")}
    if base.uses_local_kafka or base.uses_local_graph:
        shutil.rmtree(home, ignore_errors=True)
        env.update(
            STREAMREC_HOME=str(home),
            STREAMREC_LOCAL_KAFKA_PORT=str(free_port()),
            STREAMREC_LOCAL_KAFKA_CONTROLLER_PORT=str(free_port()),
            STREAMREC_LOCAL_BOLT_PORT=str(free_port()),
            STREAMREC_LOCAL_HTTP_PORT=str(free_port()),
        )
    env.setdefault("STREAMREC_SESSION_TIMEOUT_S", "3")  # a short group join (see docs/configuration.md, local servers)
    return env


def quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def scrape(port: int) -> list[tuple[str, dict, float]]:
    """(name, labels, value) of every streamrec_* sample a worker exposes; [] when it does not answer."""
    try:
        text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return []
    samples = []
    for line in text.splitlines():
        if not line.startswith("streamrec_"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        pairs = [p.split("=", 1) for p in labels.rstrip("}").split('",') if "=" in p]
        samples.append((name, {k: v.strip('"') for k, v in pairs}, float(value)))
    return samples


def totals(samples: list[tuple[str, dict, float]]) -> dict[str, float]:
    """Samples summed over their labels, by name."""
    out: dict[str, float] = {}
    for name, _, value in samples:
        out[name] = out.get(name, 0.0) + value
    return out


def stage_totals(samples: list[tuple[str, dict, float]]) -> dict[str, float]:
    """Seconds spent in each stage of the micro-batches (streamrec_stage_seconds, by its stage label) and in the
    whole batches ("batch", streamrec_batch_seconds), summed over the samples' workers."""
    out: dict[str, float] = {}
    for name, labels, value in samples:
        stage = (
            labels.get("stage")
            if name == "streamrec_stage_seconds_sum"
            else "batch"
            if name == "streamrec_batch_seconds_sum"
            else None
        )
        if stage is not None:
            out[stage] = out.get(stage, 0.0) + value
    return out


def wait_for_count(
    metrics_ports: int | list[int],
    metric: str,
    count: float,
    what: str,
    timeout_s: float = 120.0,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Until the counter `metric`, summed over its labels and over the workers of `metrics_ports` (one or a
    list), reaches `count`; raises, naming `what`, when it does not within `timeout_s` or when `alive()` turns
    false."""
    ports = [metrics_ports] if isinstance(metrics_ports, int) else metrics_ports
    deadline = time.monotonic() + timeout_s
    while sum(totals(scrape(port)).get(metric, 0.0) for port in ports) < count:
        if not alive():
            raise RuntimeError(f"the worker exited before it had {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not have {what} within {timeout_s:.0f} s")
        time.sleep(0.2)


def wait_for_items(metrics_ports: int | list[int], count: int, timeout_s: float = 120.0) -> None:
    """Until the worker (or the workers together: each applies its own partitions' items) has applied `count`
    item records (their text encoded): encoding a catalogue takes seconds, which would otherwise land on the
    first measured events."""
    wait_for_count(metrics_ports, "streamrec_items_total", count, f"applied the {count} item records", timeout_s)


class WorkerProcess:
    """`streamrec worker` as a child process with its own environment and log file."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    @property
    def metrics_port(self) -> int:
        return int(self.env["STREAMREC_METRICS_PORT"])

    def start(self, timeout_s: float = 90.0, until_ready: bool = False) -> "WorkerProcess":
        """Returns once Faust reports the worker ready (partitions assigned); with `until_ready`, once /readyz
        also answers 200 (servers answer and the model's state is loaded)."""
        start_of_run = self.launch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if b"Worker]: Ready" in self.log_path.read_bytes()[start_of_run:] and (not until_ready or self.ready()):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready within {timeout_s:.0f} s:\n{self.log()[-3000:]}")

    def launch(self) -> int:
        """Starts the process and returns at once (with the log's size before it: what this run writes follows)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            start_of_run = log.tell()  # the log is appended to: an earlier run's "Ready" must not count
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamrec", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        return start_of_run

    def ready(self) -> bool:
        try:
            with urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self, kill: bool = False, timeout_s: float = 30.0) -> None:
        if not self.running():
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ListCollector(threading.Thread):
    """Reads `recommendations` in the background and hands each list, with its arrival time, to `on_list`."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        on_list: Callable[[float, dict], None],
        client_options: dict,
        fetch_max_wait_ms: int = 500,
    ):
        super().__init__(daemon=True)
        from kafka import KafkaConsumer

        # STREAMREC_FETCH_MAX_WAIT_MS: a broker that holds fetches for the full wait (the light stack's Tansu)
        # would otherwise add up to kafka-python's default 500 ms to every measured freshness
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
            **client_options,
        )
        self.on_list = on_list
        self.count = 0
        self.stopping = threading.Event()

    @classmethod
    def for_settings(cls, settings, topic: str, on_list: Callable[[float, dict], None]) -> "ListCollector":
        """A collector that reaches the broker as the worker does (its client options and fetch wait)."""
        return cls(settings.bootstrap, topic, on_list, settings.kafka_client_options(), settings.fetch_max_wait_ms)

    def run(self) -> None:
        while not self.stopping.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                now = time.time()
                for record in records:
                    self.on_list(now, orjson.loads(record.value))
                    self.count += 1
        self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class FreshnessTracker:
    """Matches lists to the events they reflect. A list for user u naming event e as its last reflects every
    event of u sent up to e (a user's events stay in order on one partition), so each event's freshness is
    the arrival of the first list that reflects it minus the time the producer sent it (one clock)."""

    def __init__(self, event_ids: list[str], users: list[str]):
        from collections import deque

        self.index = {event_id: k for k, event_id in enumerate(event_ids)}
        self.pending: dict[str, deque] = {}
        for k, user in enumerate(users):
            self.pending.setdefault(user, deque()).append(k)
        self.sent_times: list[float] = []  # filled by the producer, in send order
        self.freshness: list[float] = []
        self.reflected_at: list[float] = []  # arrival time of each reflected event (for lag over time)
        self.by_event: dict[int, float] = {}  # event index -> its freshness
        self.lock = threading.Lock()
        self.users_with_lists: set[str] = set()
        self.models: dict[str, int] = {}  # "model version" -> lists

    def on_list(self, arrived: float, record: dict) -> None:
        label = f"{record['model']} {record['model_version']}"
        with self.lock:
            self.models[label] = self.models.get(label, 0) + 1
            self.users_with_lists.add(record["user_id"])
            last = self.index.get(record["last_event_id"])
            queue = self.pending.get(record["user_id"])
            if last is None or queue is None:
                return
            sent = len(self.sent_times)
            while queue and queue[0] <= last and queue[0] < sent:
                k = queue.popleft()
                self.freshness.append(arrived - self.sent_times[k])
                self.by_event[k] = self.freshness[-1]
                self.reflected_at.append(arrived)

    def summary(self) -> dict:
        with self.lock:
            ordered = sorted(self.freshness)
        rounded = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {
            "events_reflected": len(ordered),
            "p50_s": rounded(quantile(ordered, 0.50)),
            "p95_s": rounded(quantile(ordered, 0.95)),
            "p99_s": rounded(quantile(ordered, 0.99)),
            "max_s": rounded(ordered[-1] if ordered else None),
        }
