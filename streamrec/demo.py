"""`streamrec demo`: fresh local servers, one worker, a real data set replayed as live events, a summary.

Freshness here is measured from outside the worker: the time the demo's consumer receives a list minus the
time the demo's producer sent the event the list names as `last_event_id` (one clock: the same machine).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .datasets import load_dataset
from .replay_source import item_records, select
from .services import local_services
from .settings import load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _scrape(port: int) -> dict[str, float]:
    from urllib.request import urlopen

    totals: dict[str, float] = {}
    try:
        text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return totals
    for line in text.splitlines():
        if line.startswith("streamrec_") and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


class ListCollector(threading.Thread):
    """Reads `recommendations` while the demo runs; records when each list arrived."""

    def __init__(self, bootstrap: str, topic: str, client_options: dict):
        super().__init__(daemon=True)
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                      enable_auto_commit=False, **client_options)
        self.arrivals: list[tuple[float, str]] = []  # (received at, last_event_id)
        self.users: set[str] = set()
        self.models: dict[str, int] = {}  # "model version" -> lists published by it
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                now = time.time()
                for record in records:
                    value = json.loads(record.value)
                    self.arrivals.append((now, value["last_event_id"]))
                    self.users.add(value["user_id"])
                    label = f'{value["model"]} {value["model_version"]}'
                    self.models[label] = self.models.get(label, 0) + 1
        self.consumer.close()


def ensure_demo_checkpoint(dataset: str, model_dir: Path, epochs: int = 2) -> Path:
    """The temporal GAT the demo serves: trained once on the demo's data set (a minute or two here), then reused."""
    folder = model_dir / f"demo-{dataset}"
    if (folder / "model.pt").exists():
        print(f"demo: reusing the checkpoint in {folder}")
        return folder
    print(f"demo: training a temporal GAT on {dataset} ({epochs} epochs) into {folder}")
    subprocess.run([sys.executable, "-m", "streamrec", "train", "--dataset", dataset, "--out", str(folder),
                    "--epochs", str(epochs)], check=True)
    return folder


def run_demo(dataset: str, limit: int | None, rate: float | None, out_dir: Path, use_model: bool = True) -> dict:
    from tqdm import tqdm

    from graph_store import GraphStore
    from stream.replay import make_producer, replay
    from stream.topics import TopicNames, ensure_topics

    base = load_settings()
    model_dir = ensure_demo_checkpoint(dataset, base.model_dir) if use_model else out_dir / "no-model"
    run_id = time.strftime("%Y%m%d-%H%M%S")
    env = {k: v for k, v in os.environ.items() if k.startswith("STREAMREC_")}
    demo_home = out_dir / "home"
    if base.uses_local_kafka or base.uses_local_graph:
        shutil.rmtree(demo_home, ignore_errors=True)  # a fresh graph and broker every run
        env.update(STREAMREC_HOME=str(demo_home), STREAMREC_LOCAL_KAFKA_PORT=str(_free_port()),
                   STREAMREC_LOCAL_BOLT_PORT=str(_free_port()), STREAMREC_LOCAL_HTTP_PORT=str(_free_port()))
    env.update(STREAMREC_TOPIC_PREFIX=f"{base.topic_prefix}demo-{run_id}-", STREAMREC_APP_ID=f"streamrec-demo-{run_id}",
               STREAMREC_METRICS_PORT=str(_free_port()), STREAMREC_SESSION_TIMEOUT_S=env.get("STREAMREC_SESSION_TIMEOUT_S", "3"),
               STREAMREC_DATA_DIR=str(base.data_dir), STREAMREC_MODEL_DIR=str(model_dir))
    settings = load_settings(env)
    names = TopicNames.with_prefix(settings.topic_prefix)
    out_dir.mkdir(parents=True, exist_ok=True)

    data = load_dataset(dataset, settings.data_dir, base.home / "data")
    columns = select(data, limit)
    n_events = len(columns["users"])
    print(f"demo: {data.name}, {n_events} events of {len(set(columns['users']))} users "
          f"{'at ' + str(int(rate)) + ' events/s' if rate else 'as fast as possible'}")

    started_services = []
    worker = None
    collector = None
    try:
        for service in local_services(settings):
            service.start()
            started_services.append(service)
            print(f"demo: {service.name} up on {service.address()}")
        ensure_topics(settings.bootstrap, names, settings.partitions, **settings.kafka_client_options())
        worker_log = open(out_dir / "worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "streamrec", "worker"], env={**os.environ, **env},
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        _wait_for_worker(out_dir / "worker.log", worker)
        print(f"demo: worker ready (metrics on 127.0.0.1:{settings.metrics_port}/metrics, log {out_dir / 'worker.log'})")
        collector = ListCollector(settings.bootstrap, names.recommendations, settings.kafka_client_options())
        collector.start()

        producer = make_producer(settings.bootstrap, **settings.kafka_client_options())
        sent_times: list[float] = []
        sender = threading.Thread(target=replay, daemon=True, args=(producer, names),
                                  kwargs=dict(item_records=item_records(data, set(columns["items"])), rate=rate,
                                              sent_times=sent_times, **columns))
        started = time.time()
        sender.start()
        with tqdm(total=n_events, unit="ev", desc="processed") as bar:
            processed = 0.0
            idle_since = time.monotonic()
            while processed < n_events:
                time.sleep(0.5)
                metrics = _scrape(settings.metrics_port)
                now_processed = metrics.get("streamrec_events_total", 0.0)
                bar.set_postfix_str(f"sent {len(sent_times)}, lists {len(collector.arrivals)}, "
                                    f"dead letters {int(metrics.get('streamrec_dead_letters_total', 0))}")
                bar.update(int(now_processed - processed))
                if now_processed > processed:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 60 and not sender.is_alive():
                    raise RuntimeError(f"the worker stopped making progress; see {out_dir / 'worker.log'}")
                processed = now_processed
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {worker.returncode}; see {out_dir / 'worker.log'}")
        sender.join()
        producer.close()
        elapsed = time.time() - started
        time.sleep(1.0)  # the last lists are on their way to the collector
        metrics = _scrape(settings.metrics_port)
        sent_at = dict(zip(columns["event_ids"], sent_times))
        freshness = sorted(at - sent_at[event_id] for at, event_id in collector.arrivals if event_id in sent_at)
        batches = metrics.get("streamrec_batch_size_events_count", 0)
        graph = asyncio.run(_graph_size(GraphStore.from_settings(settings)))
        summary = {
            "dataset": data.name,
            "events_sent": len(sent_at),
            "events_in": int(metrics.get("streamrec_events_total", 0)),
            "dlq": int(metrics.get("streamrec_dead_letters_total", 0)),
            "lists_published": len(collector.arrivals),
            "users_with_lists": len(collector.users),
            "freshness_p50_s": _round(_quantile(freshness, 0.50)),
            "freshness_p99_s": _round(_quantile(freshness, 0.99)),
            "freshness_max_s": _round(freshness[-1] if freshness else None),
            "seconds": round(elapsed, 1),
            "events_per_second": round(len(sent_at) / elapsed, 1) if elapsed else None,
            "graph": graph,
            "worker_stage_seconds_per_batch": {
                stage: round(metrics.get(f"streamrec_{stage}_seconds_sum", 0) / batches, 4) if batches else None
                for stage in ("graph_upsert", "refresh", "publish", "batch")},
            "events_per_batch": round(metrics.get("streamrec_batch_size_events_sum", 0) / batches, 1) if batches else None,
            "models": collector.models,
            "target_rate": rate,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
    finally:
        if collector is not None:
            collector.stopping.set()
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for service in reversed(started_services):
            service.stop()
            print(f"demo: {service.name} stopped")


async def _graph_size(store) -> dict:
    async with store:
        return await store.size()


def _wait_for_worker(log_path: Path, worker, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}:\n{log_path.read_text()[-2000:]}")
        if b"Worker]: Ready" in log_path.read_bytes():
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker was not ready within {timeout_s:.0f} s; see {log_path}")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
