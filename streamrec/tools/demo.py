"""`streamrec demo`: fresh local servers, one worker, a real data set replayed as live events, a summary.

Freshness here is measured from outside the worker: the time the demo's consumer receives a list minus the
time the demo's producer sent the event the list names as `last_event_id` (one clock: the same machine).
The first events warm the pipeline up (the servers' JIT, the worker's first batches, the model) and are
left out of the freshness figures, which describe the steady state; the summary says how many.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from .datasets import load_dataset
from .live import (
    FreshnessTracker,
    ListCollector,
    WorkerProcess,
    free_port,
    isolated_env,
    scrape,
    stage_totals,
    totals,
    wait_for_count,
    wait_for_items,
)
from .replay_source import item_records, select
from .servers import running_local_services
from ..runtime.model_versions import pinned_env
from ..runtime.settings import load_settings


def demo_model_dir(home: Path, dataset: str) -> Path:
    """The demo's own model folder, outside STREAMREC_MODEL_DIR: a later `streamrec worker` must not serve a
    model trained on the demo's data set to the user's stream."""
    return home / "demo-models" / dataset


def ensure_demo_checkpoint(dataset: str, home: Path, epochs: int = 2) -> Path:
    """The temporal GAT the demo serves: trained once on the demo's data set (a minute or two here), then reused."""
    from ..runtime.model_versions import rejection

    folder = demo_model_dir(home, dataset)
    if (folder / "model.pt").exists():
        refused = rejection(folder / "model.pt")
        if not refused:
            print(f"demo: reusing the checkpoint in {folder}")
            return folder
        print(f"demo: not reusing the checkpoint: {refused}")
    print(f"demo: training a temporal GAT on {dataset} ({epochs} epochs) into {folder}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "streamrec",
            "train",
            "--dataset",
            dataset,
            "--out",
            str(folder),
            "--epochs",
            str(epochs),
        ],
        check=True,
    )
    return folder


def run_demo(
    dataset: str,
    limit: int | None,
    rate: float | None,
    out_dir: Path,
    use_model: bool = True,
    warmup: int = 3000,
    progress: bool = True,
    provenance: dict | None = None,
) -> dict:
    """Runs the demo; its summary.json starts with `provenance` (the command that ran it and the commit)."""
    from stream.topics import TopicNames

    base = load_settings()
    env = _demo_env(base, dataset, use_model, out_dir)
    settings = load_settings(env)
    names = TopicNames.with_prefix(settings.topic_prefix)
    out_dir.mkdir(parents=True, exist_ok=True)

    data = load_dataset(dataset, settings.data_dir, base.home / "data")
    columns = select(data, limit)
    n_events = len(columns["users"])
    warmup = min(warmup, n_events // 10)
    warm, timed = split_columns(columns, warmup)
    print(
        f"demo: {data.name}, {n_events} events of {len(set(columns['users']))} users "
        f"{'at ' + str(int(rate)) + ' events/s' if rate else 'as fast as possible'}, the first {warmup} to warm up"
    )
    items = item_records(data, set(columns["items"]))
    # undone in reverse: the collector, the worker, then the servers
    with running_local_services(settings, report=lambda line: print(f"demo: {line}")), ExitStack() as cleanup:
        worker = _start_worker(settings, names, env, out_dir)
        cleanup.callback(worker.stop)
        tracker = FreshnessTracker(timed["event_ids"], timed["users"])
        collector = ListCollector.for_settings(settings, names.recommendations, tracker.on_list)
        collector.start()
        cleanup.callback(collector.stop)
        started, elapsed = _stream(settings, names, worker, tracker, collector, items, warm, timed, rate, progress)
        summary = {
            **(provenance or {}),
            "dataset": data.name,
            "warmup_events": warmup,
            **_summary(settings, tracker, collector, warmup, elapsed),  # the worker's metrics: while it runs
            "target_rate": rate,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _plot_freshness(tracker, started, out_dir / "freshness_over_time.png")
        return summary


def _start_worker(settings, names, env: dict, out_dir: Path) -> WorkerProcess:
    """The demo's topics, then its worker, once it answers ready."""
    from stream.topics import ensure_topics

    ensure_topics(
        settings.bootstrap, names, settings.partitions, settings.replication_factor, **settings.kafka_client_options()
    )
    worker = WorkerProcess(env, out_dir / "worker.log").start(until_ready=True)
    print(f"demo: worker ready (metrics on 127.0.0.1:{settings.metrics_port}/metrics, log {worker.log_path})")
    return worker


def _demo_env(base, dataset: str, use_model: bool, out_dir: Path) -> dict:
    """The worker's STREAMREC_* variables: a fresh graph and broker every run, topics and group of its own, and
    the demo's checkpoint pinned (STREAMREC_MODEL_VERSION), not promoted: nothing else serves it."""
    model_env = (
        pinned_env(ensure_demo_checkpoint(dataset, base.home))
        if use_model
        else {"STREAMREC_MODEL_DIR": str(out_dir / "no-model")}
    )
    run_id = time.strftime("%Y%m%d-%H%M%S")
    env = isolated_env(base, out_dir / "home")
    env.update(
        STREAMREC_TOPIC_PREFIX=f"{base.topic_prefix}demo-{run_id}-",
        STREAMREC_APP_ID=f"streamrec-demo-{run_id}",
        STREAMREC_METRICS_PORT=str(free_port()),
        STREAMREC_DATA_DIR=str(base.data_dir),
        **model_env,
    )
    return env


def _stream(settings, names, worker, tracker, collector, items, warm, timed, rate, progress) -> tuple[float, float]:
    """The item records, then the warm-up events (left out of the figures), then the timed events at `rate`
    while the progress is shown; (when the timed events started, how long they took to send)."""
    from stream.replay import make_producer, replay

    producer = make_producer(settings.bootstrap, **settings.kafka_client_options())
    try:
        print(f"demo: {len(items)} item records first (their text is encoded before the clock starts)")
        replay(producer, names, item_records=items, event_ids=[], users=[], items=[], types=[], ts=[])
        wait_for_items(worker.metrics_port, len(items))
        warmup = len(warm["users"])
        if warmup:
            print(f"demo: warming up with the first {warmup} events (left out of the freshness figures)")
            replay(producer, names, rate=rate, **warm)
            _wait_until_processed(worker, warmup)
        sender = threading.Thread(
            target=replay,
            daemon=True,
            args=(producer, names),
            kwargs=dict(rate=rate, sent_times=tracker.sent_times, **timed),
        )
        started = time.time()
        sender.start()
        _follow_progress(worker, sender, tracker, collector, warmup + len(timed["users"]), progress)
        sender.join()
    finally:
        producer.close()
    return started, time.time() - started


def _summary(settings, tracker, collector, warmup: int, elapsed: float) -> dict:
    """The run's figures: events in and out, freshness, the graph's size and the worker's stages per batch."""
    from graph_store import GraphStore

    time.sleep(1.0)  # the last lists are on their way to the collector
    samples = scrape(settings.metrics_port)
    metrics, stages = totals(samples), stage_totals(samples)
    batches = metrics.get("streamrec_batch_size_events_count", 0)
    freshness = tracker.summary()
    return {
        "events_sent": warmup + len(tracker.sent_times),
        "events_in": int(metrics.get("streamrec_events_total", 0)),
        "dlq": int(metrics.get("streamrec_dead_letters_total", 0)),
        "lists_published": collector.count,
        "users_with_lists": len(tracker.users_with_lists),
        "freshness_p50_s": freshness["p50_s"],
        "freshness_p99_s": freshness["p99_s"],
        "freshness_max_s": freshness["max_s"],
        "seconds": round(elapsed, 1),
        "events_per_second": round(len(tracker.sent_times) / elapsed, 1) if elapsed else None,
        "graph": asyncio.run(_graph_size(GraphStore.from_settings(settings))),
        "worker_stage_seconds_per_batch": {
            stage: round(stages.get(stage, 0) / batches, 4) if batches else None
            for stage in ("graph_upsert", "refresh", "publish", "batch")
        },
        "events_per_batch": (
            round(metrics.get("streamrec_batch_size_events_sum", 0) / batches, 1) if batches else None
        ),
        "models": tracker.models,
    }


def split_columns(columns: dict, first: int) -> tuple[dict, dict]:
    """The producer columns of the first `first` events and of the rest."""
    return (
        {name: values[:first] for name, values in columns.items()},
        {name: values[first:] for name, values in columns.items()},
    )


def _wait_until_processed(worker: WorkerProcess, n_events: int, timeout_s: float = 300.0) -> None:
    wait_for_count(
        worker.metrics_port,
        "streamrec_events_total",
        n_events,
        f"processed the {n_events} warm-up events (see {worker.log_path})",
        timeout_s,
        worker.running,
    )
    time.sleep(1.0)  # the warm-up's last lists are published and the lanes are idle


def _follow_progress(
    worker: WorkerProcess,
    sender: threading.Thread,
    tracker: FreshnessTracker,
    collector: ListCollector,
    n_events: int,
    progress: bool = True,
) -> None:
    """A progress bar (hidden unless `progress`) of the events the worker has processed, until all of them are."""
    from tqdm import tqdm

    with tqdm(total=n_events, unit="ev", desc="processed", disable=not progress) as bar:
        processed = 0.0
        idle_since = time.monotonic()
        while processed < n_events:
            time.sleep(0.5)
            metrics = totals(scrape(worker.metrics_port))
            now_processed = metrics.get("streamrec_events_total", 0.0)
            bar.set_postfix_str(
                f"sent {len(tracker.sent_times)}, lists {collector.count}, "
                f"dead letters {int(metrics.get('streamrec_dead_letters_total', 0))}"
            )
            bar.update(int(now_processed - processed))
            if now_processed > processed:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 60 and not sender.is_alive():
                raise RuntimeError(f"the worker stopped making progress; see {worker.log_path}")
            processed = now_processed
            if not worker.running():
                raise RuntimeError(f"the worker exited; see {worker.log_path}")


def _plot_freshness(tracker: FreshnessTracker, started: float, path: Path) -> None:
    """Each event's freshness against the time its list arrived: where in the run the slow ones are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tracker.lock:
        points = list(zip(tracker.reflected_at, tracker.freshness))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.scatter([t - started for t, _ in points], [f for _, f in points], s=2, alpha=0.4)
    ax.set(
        yscale="log",
        xlabel="seconds since the timed replay began (list arrival)",
        ylabel="freshness (s): list received - event sent",
        title="Demo: freshness of every timed event",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def _graph_size(store) -> dict:
    async with store:
        return await store.size()
