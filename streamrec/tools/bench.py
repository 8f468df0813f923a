"""`streamrec bench`: freshness and throughput of the real pipeline at several input rates and worker counts.

For each worker count and rate, fresh workers of one consumer group (the temporal GAT checkpoint, or the
baseline) consume a real data set replayed at that rate for a fixed time; a consumer of `recommendations`
matches every list to the events it reflects (streamrec.tools.live.FreshnessTracker). Freshness = list
received - event sent, on one machine's clock. Lag is counted, never read from the broker's end offsets:
events sent minus events reflected by a list. The CPU of the workers and their model processes per event
shows what more workers cost: each worker's model folds in every partition's events (stream/replica.py).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .bench_preload import Preload, load_before_run, remapped, store_bytes
from .datasets import Dataset
from .paths import as_typed
from .live import (
    FreshnessTracker,
    ListCollector,
    WorkerProcess,
    free_port,
    isolated_env,
    scrape,
    stage_totals,
    totals,
    wait_for_items,
)
from .replay_source import item_records, select
from .servers import running_local_services
from ..runtime.model_versions import pinned_env
from ..runtime.settings import load_settings

# refresh: the model host's observe + rank and the round trip to it (the stages plot draws that remainder)
STAGES = ("intake", "arrival", "validate", "graph_upsert", "refresh", "observe", "rank", "publish", "batch")
SUSTAINABLE_P99_S = 1.0
PIPELINE_ROLES = ("worker", "model_host")  # streamrec's own processes: "total" CPU per event is theirs
# every process on the machine whose CPU per event is reported: the servers' count (a real-time budget is the
# whole box's), the bench's own producer and list consumer apart (a user's producers run elsewhere)
SERVER_ROLES = ("kafka", "neo4j")
LOAD_GENERATOR = "load_generator"
# the processes' CPU and memory, and the workers' /metrics, once a second: each scrape costs a worker CPU (a
# Prometheus scrapes every 15 s; at twice a second the scrapes were ~11 % of the worker's busy time at 100 events/s)
SAMPLE_EVERY_S = 1.0
MEASURED_ROLES = PIPELINE_ROLES + SERVER_ROLES + (LOAD_GENERATOR,)


@dataclass
class RateRun:
    rate: float
    workers: int = 1
    samples: list[dict] = field(default_factory=list)  # time series: sent, reflected, processed, cpu, rss
    result: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {self.rate:g}/s"


def run_slug(workers: int, rate: float) -> str:
    """A run's part of its file names."""
    return f"{workers}w-{rate:g}"


def partitions_for(worker_counts: Sequence[int], at_least: int) -> int:
    """The smallest multiple of every worker count that is at least `at_least`: Faust's assignor fills each
    worker up to ceil(partitions / workers), so any other count leaves a worker with more partitions (or none)."""
    step = math.lcm(*worker_counts)
    return step * max(1, math.ceil(at_least / step))


def process_name(role: str, index: int, count: int) -> str:
    """ "worker" with one worker, as before; "worker0", "worker1"... with several."""
    return role if count == 1 else f"{role}{index}"


def role_of(name: str) -> str:
    """ "worker1" -> "worker"; the light stack's servers count as the roles they stand in for."""
    role = name.rstrip("0123456789")
    return {"tansu": "kafka", "arcadedb": "neo4j"}.get(role, role)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each named process so far; a process that has ended is left out. A
    process's own times leave out its children's, so a worker's do not count its model process again."""
    import psutil

    spent = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        spent[name] = times.user + times.system
    return spent


def cpu_by_role(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, summed per role ("worker0" and "worker1" count as "worker")."""
    spent = {role: 0.0 for role in PIPELINE_ROLES}
    for name in before.keys() & after.keys():
        role = role_of(name)
        spent[role] = spent.get(role, 0.0) + after[name] - before[name]
    return spent


def cpu_ms_per_event(spent: dict[str, float], events: int) -> dict[str, float | None]:
    """Milliseconds of CPU per event, per role and in total."""

    def per_event(seconds):
        return round(seconds / events * 1000, 3) if events else None

    return {
        **{role: per_event(spent.get(role, 0.0)) for role in MEASURED_ROLES if role in spent},
        "total": per_event(sum(spent.get(role, 0.0) for role in PIPELINE_ROLES)),
        # None when the servers run elsewhere (STREAMREC_KAFKA_BOOTSTRAP / _NEO4J_URI): their CPU is not seen here
        "all_processes": per_event(sum(spent.get(role, 0.0) for role in PIPELINE_ROLES + SERVER_ROLES))
        if all(role in spent for role in SERVER_ROLES)
        else None,
    }


def events_per_cpu_second(events: int, spent: dict[str, float]) -> float | None:
    """Events per CPU second of the workers and their model processes: the efficiency per core."""
    total = sum(spent.get(role, 0.0) for role in PIPELINE_ROLES)
    return round(events / total, 1) if total > 0 else None


def cycled_columns(data: Dataset, n: int, run_id: str) -> dict:
    """n events: the data set in time order, repeated when n is larger. Event ids are unique per run; user and
    item ids are the data set's own, so every run sees one data set's catalogue. Times are the replay's
    (replay_source.select): a data set recorded before 2000 is shifted, or the worker would reject every event."""
    replayed = select(data)
    pick = [k % len(data) for k in range(n)]
    return {
        "event_ids": [f"{run_id}{k}" for k in range(n)],
        **{name: [replayed[name][k] for k in pick] for name in ("users", "items", "types", "ts")},
    }


class ProcessSampler(threading.Thread):
    """CPU share and resident memory of the processes under test, every `interval_s`."""

    def __init__(self, pids: dict[str, int], on_sample, interval_s: float = 0.5):
        super().__init__(daemon=True)
        import psutil

        self.processes = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        for process in self.processes.values():
            process.cpu_percent(None)  # the first call only starts the measurement
        self.on_sample = on_sample
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.peak_rss: dict[str, int] = {name: 0 for name in self.processes}
        self.cpu: dict[str, list[float]] = {name: [] for name in self.processes}

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            sample = {"t": time.time()}
            for name, process in self.processes.items():
                try:
                    cpu, rss = process.cpu_percent(None), process.memory_info().rss
                except Exception:  # the process ended
                    continue
                self.cpu[name].append(cpu)
                self.peak_rss[name] = max(self.peak_rss[name], rss)
                sample[f"cpu_{name}"] = cpu
            self.on_sample(sample)

    def summary(self) -> dict:
        """Mean CPU, and the means of the first and the last quarter of the samples: a process whose cost grows
        during a run shows it (the local broker's fetches cost more as its log grows; see docs/scaling.md)."""

        def mean(values):
            return round(sum(values) / len(values), 1) if values else None

        def quarters(values):
            n = max(1, len(values) // 4)
            return {"cpu_percent_first_quarter": mean(values[:n]), "cpu_percent_last_quarter": mean(values[-n:])}

        return {
            name: {"cpu_percent_mean": mean(v), **quarters(v), "peak_rss_mib": round(self.peak_rss[name] / 2**20, 1)}
            for name, v in self.cpu.items()
        }


def model_host_pid(worker_pid: int) -> int | None:
    """The worker's model process (streamrec/runtime/model_host.py), a child started by multiprocessing's spawn."""
    import psutil

    for child in psutil.Process(worker_pid).children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


def start_group(
    env: dict, count: int, log_stem: Path, ready_timeout_s: float = 60.0, start_timeout_s: float = 90.0
) -> list[WorkerProcess]:
    """`count` workers of one consumer group (the same app id and topics in `env`), each with its own /metrics
    port, started one after the other, each until ready; then until every one answers ready again, since each
    join moved the earlier workers' partitions. The started ones are stopped when a later one fails."""
    group = [
        WorkerProcess({**env, "STREAMREC_METRICS_PORT": str(free_port())}, Path(f"{log_stem}-{k}.log"))
        for k in range(count)
    ]
    try:
        for worker in group:
            worker.start(start_timeout_s, until_ready=True)
        _wait_until(lambda: all(worker.ready() for worker in group), "every worker ready", ready_timeout_s)
    except BaseException:
        stop_group(group)
        raise
    return group


def stop_group(group: list[WorkerProcess]) -> None:
    for worker in group:
        worker.stop()


def group_pids(group: list[WorkerProcess]) -> dict[str, int]:
    """The workers' and their model processes' pids, by process_name."""
    pids = {}
    for k, worker in enumerate(group):
        pids[process_name("worker", k, len(group))] = worker.pid
        model_host = model_host_pid(worker.pid)
        if model_host:
            pids[process_name("model_host", k, len(group))] = model_host
    return pids


def scrape_group(group: list[WorkerProcess]) -> list[tuple[str, dict, float]]:
    """Every worker's samples, one list: the helpers below sum them by name."""
    return [sample for worker in group for sample in scrape(worker.metrics_port)]


def _wait_until(condition, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {what} within {timeout_s:.0f} s")
        time.sleep(0.2)


def _stage_seconds(samples) -> dict:
    sums, batches = stage_totals(samples), totals(samples).get("streamrec_batch_seconds_count", 0)
    return {stage: round(sums.get(stage, 0.0) / batches * 1000, 2) if batches else None for stage in STAGES}


def _lag_slope(samples: list[dict], send_end: float) -> float | None:
    """Events/s by which the lag grew over the second half of the sending window (least squares)."""
    points = [(s["t"], s["sent"] - s["reflected"]) for s in samples if s["t"] <= send_end]
    points = points[len(points) // 2 :]
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_l = sum(lag for _, lag in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (lag - mean_l) for t, lag in points) / var if var else None


def run_rate(
    settings,
    env: dict,
    data: Dataset,
    rate: float,
    duration_s: float,
    out_dir: Path,
    service_pids: dict,
    workers: int = 1,
    drain_s: float = 30.0,
    preload: Preload | None = None,
) -> RateRun:
    """One worker count at one rate: a fresh group on topics of its own, the timed input, then the figures. With
    `preload`, the events are remapped onto the preloaded graph's ids and the item records are left out (they
    name the data set's own items)."""
    from stream.topics import TopicNames

    run = RateRun(rate, workers)
    prefix = f"w{workers}-r{int(rate)}-{int(time.time())}-"
    names = TopicNames.with_prefix(prefix)
    start_timeout_s = preload.ready_timeout_s if preload else 90.0
    group = _start_group_on_own_topics(
        settings, env, names, prefix, workers, out_dir / f"worker-{run_slug(workers, rate)}", start_timeout_s
    )
    columns = cycled_columns(data, int(rate * duration_s), prefix)
    if preload:
        columns = remapped(columns, preload)
    tracker = FreshnessTracker(columns["event_ids"], columns["users"])
    items = [] if preload else item_records(data, set(data.items))
    measured = _drive_group(settings, names, group, run, tracker, columns, items, service_pids, drain_s)
    run.result = _rate_result(settings, run, tracker, measured)
    return run


def _start_group_on_own_topics(
    settings, env: dict, names, prefix: str, workers: int, log_stem: Path, start_timeout_s: float = 90.0
):
    """The run's topics, then its workers: one consumer group (the same app id and topics), so the workers split
    the partitions between them."""
    from stream.topics import ensure_topics

    group_env = {**env, "STREAMREC_TOPIC_PREFIX": prefix, "STREAMREC_APP_ID": prefix + "bench"}
    ensure_topics(
        settings.bootstrap, names, settings.partitions, settings.replication_factor, **settings.kafka_client_options()
    )
    return start_group(group_env, workers, log_stem, max(60.0, start_timeout_s), start_timeout_s)


def _sample_group(run: RateRun, group: list[WorkerProcess], tracker: FreshnessTracker):
    """The sampler's callback: each process sample gets what the load generator and the workers count then."""

    def on_sample(sample):
        metrics_now = scrape_group(group)
        following = [v for name, _, v in metrics_now if name == "streamrec_follow_lag_events" and v >= 0]
        sample.update(
            sent=len(tracker.sent_times),
            reflected=len(tracker.freshness),
            processed=totals(metrics_now).get("streamrec_events_total", 0.0),
            follow_lag_max=max(following, default=None),
        )
        run.samples.append(sample)

    return on_sample


@dataclass
class _Measured:
    """What one run's timed input left to report: its window, the CPU each role spent in it, the workers' last
    metrics, the list collector and the process sampler."""

    window: _Window
    spent: dict
    metrics: list
    collector: ListCollector
    sampler: ProcessSampler


def _drive_group(settings, names, group, run, tracker, columns, items, service_pids, drain_s) -> _Measured:
    """The items (untimed), then the timed events at the run's rate and the drain, sampled all along; the group
    is stopped at the end, whatever happens."""
    from stream.replay import make_producer, replay

    measured = group_pids(group)
    with ExitStack() as cleanup:  # undone in reverse: the producer, the collector, then the workers
        cleanup.callback(stop_group, group)
        collector = ListCollector.for_settings(settings, names.recommendations, tracker.on_list)
        collector.start()
        cleanup.callback(collector.stop)
        everyone = {**measured, **service_pids, LOAD_GENERATOR: os.getpid()}
        sampler = ProcessSampler(everyone, _sample_group(run, group, tracker), SAMPLE_EVERY_S)
        producer = make_producer(settings.bootstrap, **settings.kafka_client_options())
        cleanup.callback(producer.close)
        # items first, untimed: the clock starts when the workers have applied them (encoding a catalogue's text
        # takes seconds, which would otherwise land on the first timed events)
        replay(producer, names, event_ids=[], users=[], items=[], types=[], ts=[], item_records=items)
        wait_for_items([worker.metrics_port for worker in group], len(items))
        sampler.start()
        cpu_before = cpu_seconds(everyone)
        window = _timed_input(producer, names, run.rate, tracker, columns, drain_s)
        spent = cpu_by_role(cpu_before, cpu_seconds(everyone))
        sampler.stopping.set()
        sampler.join(5)
        metrics = scrape_group(group)
    return _Measured(window, spent, metrics, collector, sampler)


def _timed_input(producer, names, rate: float, tracker: FreshnessTracker, columns: dict, drain_s: float):
    """The events at `rate`, then up to `drain_s` for their lists: the window they took."""
    from stream.replay import replay

    started = time.time()
    stats = replay(producer, names, rate=rate, sent_times=tracker.sent_times, **columns)
    window = _Window(started, time.time(), stats.events_sent)
    deadline = time.monotonic() + drain_s
    while len(tracker.freshness) < stats.events_sent and time.monotonic() < deadline:
        time.sleep(0.2)
    window.finished = time.time()
    return window


def _rate_result(settings, run: RateRun, tracker: FreshnessTracker, measured: _Measured) -> dict:
    """bench.json's entry for one run: delivery, the workers' own figures, CPU per event, the processes."""
    spent, events_sent = measured.spent, measured.window.events_sent
    result = {
        "workers": run.workers,
        "partitions": settings.partitions,
        "target_rate": run.rate,
        **_delivery(run, tracker, measured.collector, measured.window),
        **_inside_the_workers(measured.metrics),
        "follow_lag_events_max": max(
            (s["follow_lag_max"] for s in run.samples if s["follow_lag_max"] is not None), default=None
        ),
        # from the timed input's start to the drain's end, summed over the workers (their model processes apart)
        "cpu_seconds": {role: round(seconds, 2) for role, seconds in spent.items()},
        "cpu_ms_per_event": cpu_ms_per_event(spent, events_sent),
        "events_per_cpu_second": events_per_cpu_second(tracker.summary()["events_reflected"], spent),
        "processes": measured.sampler.summary(),
        "models": tracker.models,
    }
    result["sustainable"] = _sustainable(result)
    result["freshness_sorted_s"] = sorted(tracker.freshness)  # for the CDF plot; dropped from bench.json
    return result


@dataclass
class _Window:
    """The timed input of a run: when it started and ended, how many events it sent, when the drain ended."""

    started: float
    send_end: float
    events_sent: int
    finished: float = 0.0


def _delivery(run: RateRun, tracker: FreshnessTracker, collector: ListCollector, window: _Window) -> dict:
    """What the load generator saw: rates in and out, freshness end to end, the drain and the lag's slope."""
    freshness = tracker.summary()
    slope = _lag_slope(run.samples, window.send_end)
    sending_s = window.send_end - window.started
    reflected_in_window = sum(1 for t in tracker.reflected_at if t <= window.send_end)
    return {
        "events_sent": window.events_sent,
        "achieved_input_rate": round(window.events_sent / sending_s, 1),
        "achieved_output_rate": round(reflected_in_window / sending_s, 1),
        "events_reflected": freshness["events_reflected"],
        "unreflected_after_drain": window.events_sent - freshness["events_reflected"],
        "drain_seconds": round(window.finished - window.send_end, 2),
        "freshness_s": {k: v for k, v in freshness.items() if k != "events_reflected"},
        "lag_slope_events_per_s": None if slope is None else round(slope, 1),
        "lists_received": collector.count,
        "freshness_sorted_s": sorted(tracker.freshness),  # for the CDF plot; dropped from bench.json
    }


def _inside_the_workers(metrics) -> dict:
    """What the workers' own metrics say: their freshness, the follow delay, the stages and batch sizes."""
    return {
        # inside the workers: record appended to the broker -> its list acknowledged (histogram, interpolated);
        # the rest of the end-to-end figure is the producer, the broker's delivery and this consumer
        "worker_freshness_s": {
            f"p{round(q * 100)}_s": histogram_quantile(metrics, "streamrec_freshness_seconds", q) for q in (0.5, 0.99)
        },
        # how far a worker's model is behind the other workers' partitions (the replica feed, stream/replica.py)
        "follow_delay_s": {
            f"p{round(q * 100)}_s": histogram_quantile(metrics, "streamrec_follow_delay_seconds", q)
            for q in (0.5, 0.99)
        },
        "stage_ms_per_batch": _stage_seconds(metrics),
        "events_per_batch": _per_batch(metrics),
    }


def _sustainable(result: dict) -> bool:
    """p99 under SUSTAINABLE_P99_S, every event reflected, the input at 90 % of the target, the lag not growing."""
    p99, slope = result["freshness_s"]["p99_s"], result["lag_slope_events_per_s"]
    return bool(
        p99 is not None
        and p99 < SUSTAINABLE_P99_S
        and result["unreflected_after_drain"] == 0
        and result["achieved_input_rate"] >= 0.9 * result["target_rate"]
        and (slope is None or slope <= 0.02 * result["target_rate"])
    )


def histogram_quantile(samples, name: str, q: float) -> float | None:
    """Prometheus-style quantile of a histogram: linear within the bucket that holds it. Samples of several
    workers (each bound once per worker) are summed per bound first."""
    cumulative_by_upper: dict[float, float] = {}
    for metric, labels, value in samples:
        if metric == f"{name}_bucket" and labels.get("le") not in (None, "+Inf"):
            upper = float(labels["le"])
            cumulative_by_upper[upper] = cumulative_by_upper.get(upper, 0.0) + value
    buckets = sorted(cumulative_by_upper.items())
    total = sum(value for metric, _, value in samples if metric == f"{name}_count")
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            inside = cumulative - below
            return round(lower + (upper - lower) * ((rank - below) / inside if inside else 1.0), 4)
        lower, below = upper, cumulative
    return None  # beyond the largest finite bucket


def _per_batch(samples) -> float | None:
    total = totals(samples)
    count = total.get("streamrec_batch_size_events_count", 0)
    return round(total.get("streamrec_batch_size_events_sum", 0) / count, 1) if count else None


def run_bench(
    data: Dataset,
    rates: list[float],
    duration_s: float,
    out_dir: Path,
    model_dir: Path | None,
    warmup_s: float = 10.0,
    worker_counts: Sequence[int] = (1,),
    command: str = "",
    preload: Preload | None = None,
) -> dict:
    base = load_settings()
    out_dir.mkdir(parents=True, exist_ok=True)
    # one partition count for every run, so that runs differ in their worker count alone
    partitions = partitions_for(worker_counts, base.partitions)
    runs = []
    for workers in worker_counts:
        for rate in rates:
            run = _run_on_fresh_servers(
                base, data, rate, workers, partitions, duration_s, out_dir, model_dir, warmup_s, preload
            )
            print(f"bench:   {run_line(run)}")
            runs.append(run)
    by_workers = highest_sustainable_rates([r.result for r in runs])
    sustainable = [rate for rate in by_workers.values() if rate is not None]
    from model_server.evaluation.report import git_commit

    report = {
        "command": command,
        "git": git_commit(Path(__file__).resolve().parent),
        "stack": stack_description(base),
        "dataset": data.name,
        "checksums": data.checksums,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "model_dir": as_typed(model_dir) if model_dir else None,
        "worker_counts": list(worker_counts),
        "partitions": partitions,
        "preload": asdict(preload) if preload else None,
        "highest_sustainable_rate": max(sustainable) if sustainable else None,
        "highest_sustainable_rate_by_workers": by_workers,
        "rule": f"p99 freshness < {SUSTAINABLE_P99_S} s, every event reflected within the drain time, input rate "
        f">= 90% of target, lag not growing (slope <= 2% of the rate)",
        "machine": {"cpus": os.cpu_count()},
        "runs": [
            {k: v for k, v in r.result.items() if k != "freshness_sorted_s"} | {"samples": r.samples} for r in runs
        ],
    }
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    _plot(runs, out_dir, model_waits_for_graph(model_dir))
    return report


def model_waits_for_graph(model_dir: Path | None) -> bool:
    """Whether the served model's refresh waits for the graph upsert (stream/processing.py): a checkpoint is the
    temporal GAT, no checkpoint the co-occurrence baseline."""
    from model_server.baselines.cooccurrence import ItemCooccurrence
    from model_server.tgat.recommender import TGATRecommender

    return not (TGATRecommender if model_dir else ItemCooccurrence).observe_is_idempotent


def run_line(run: RateRun) -> str:
    r = run.result
    cpu = r["cpu_ms_per_event"]
    return (
        f"{run.label}: input {r['achieved_input_rate']}/s, output {r['achieved_output_rate']}/s, freshness "
        f"p50 {r['freshness_s']['p50_s']} s p99 {r['freshness_s']['p99_s']} s, CPU per event {cpu['total']} ms "
        f"(workers {cpu['worker']}, model hosts {cpu['model_host']}; all processes {cpu['all_processes']} ms), "
        f"{'sustainable' if r['sustainable'] else 'NOT sustainable'}"
    )


def highest_sustainable_rates(results: list[dict]) -> dict[str, float | None]:
    """Worker count (a string: a JSON key) -> the highest sustainable target rate, None where none was."""
    best: dict[str, float | None] = {}
    for r in results:
        key = str(r["workers"])
        best.setdefault(key, None)
        if r["sustainable"]:
            best[key] = max(best[key] or 0.0, r["target_rate"])  # rates are positive
    return best


def stack_description(settings) -> dict:
    """Which servers the runs used: the local stack's, or the user's own."""
    return {
        "local_stack": settings.local_stack if settings.uses_local_kafka or settings.uses_local_graph else None,
        "kafka": "local" if settings.uses_local_kafka else settings.bootstrap,
        "graph": "local" if settings.uses_local_graph else settings.bolt_uri,
    }


def _run_on_fresh_servers(
    base,
    data: Dataset,
    rate: float,
    workers: int,
    partitions: int,
    duration_s: float,
    out_dir: Path,
    model_dir: Path | None,
    warmup_s: float,
    preload: Preload | None = None,
) -> RateRun:
    """Each run (worker count and rate) gets its own local servers (an empty graph: runs do not inherit each
    other's edges), a warm-up that is not reported (the graph server's JVM compiles its hot paths during the
    first thousands of upserts), then the measured run. Real servers (STREAMREC_KAFKA_BOOTSTRAP / _NEO4J_URI)
    are used as they are."""
    env = isolated_env(base, out_dir / f"home-{run_slug(workers, rate)}")
    # the checkpoint folder is pinned (STREAMREC_MODEL_VERSION), not promoted
    env.update(pinned_env(model_dir) if model_dir else {"STREAMREC_MODEL_DIR": str(out_dir / "no-model")})
    env["STREAMREC_PARTITIONS"] = str(partitions)
    settings = load_settings(env)
    with running_local_services(settings, report=lambda line: print(f"bench: {line}")) as services:
        pids = {s.name: s.pid() for s in services}
        loaded = None
        if preload:
            print(f"bench: preloading {preload.edges:,} synthetic edges into the graph")
            loaded = load_before_run(settings, preload, min(select(data)["ts"]))
            print(f"bench: preloaded at {loaded['edges_per_second']:,.0f} edges/s")
        if warmup_s > 0:
            # one worker: the warm-up is for the servers; the measured run starts workers of its own
            print(f"bench: warm-up, {warmup_s:g} s at 500 events/s with 1 worker (not reported)")
            run_rate(settings, env, data, 500.0, warmup_s, out_dir, pids, preload=preload)
        print(
            f"bench: {data.name} at {rate:g} events/s for {duration_s:g} s with {workers} worker(s), "
            f"{partitions} partitions"
        )
        run = run_rate(settings, env, data, rate, duration_s, out_dir, pids, workers, preload=preload)
        if loaded is not None:
            graph = [s for s in services if s.name in ("neo4j", "arcadedb")]  # a local graph server's store
            run.result["preload"] = loaded | ({"store_bytes": store_bytes(graph[0].folder)} if graph else {})
        return run


def _plot(runs: list[RateRun], out_dir: Path, waits_for_graph: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        values = run.result["freshness_sorted_s"]
        if values:
            ax.plot(values, [(k + 1) / len(values) for k in range(len(values))], label=run.label)
    ax.set(
        xscale="log",
        xlabel="freshness (s): list received - event sent",
        ylabel="share of events",
        title="Freshness CDF per run (workers, input rate)",
    )
    ax.axvline(
        SUSTAINABLE_P99_S,
        color="grey",
        linestyle=":",
        label=f"{SUSTAINABLE_P99_S:g} s: the p99 a sustainable run stays under",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")  # beside the curves, not over them
    fig.savefig(out_dir / "freshness_cdf.png", dpi=120, bbox_inches="tight")
    plt.close(fig)

    _plot_stages(runs, out_dir / "stages.png", plt, waits_for_graph)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        if run.samples:
            t0 = run.samples[0]["t"]
            ax.plot(
                [s["t"] - t0 for s in run.samples], [s["sent"] - s["reflected"] for s in run.samples], label=run.label
            )
    ax.set(xlabel="seconds", ylabel="events sent, not yet reflected by a list", title="Lag over time")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    fig.savefig(out_dir / "lag.png", dpi=120, bbox_inches="tight")
    plt.close(fig)

    _plot_workers(runs, out_dir / "workers.png", plt)


LANES = ("model", "graph", "publish")  # stream/batching.py: the graph and publish lanes run beside the model
LANE_STAGES = ("validate", "observe", "rank", "model host round trip", "graph_upsert", "publish")


def lane_intervals(stage_ms: dict, model_waits_for_graph: bool = False) -> dict[str, list[tuple[str, float, float]]]:
    """(stage, start, length) in ms per lane for a batch of the mean stage times, laid out as the worker runs
    them (stream/processing.py): validate; then the graph upsert in its lane while the model observes and ranks
    (a model whose refresh is not idempotent waits for the upsert first); then the lists in the publish lane.
    The refresh's time beyond observe + rank is the round trip to the model host."""

    def ms(stage):
        return stage_ms.get(stage) or 0.0

    validate, upsert, observe, rank = ms("validate"), ms("graph_upsert"), ms("observe"), ms("rank")
    refresh = max(ms("refresh"), observe + rank)
    model_start = validate + (upsert if model_waits_for_graph else 0.0)
    model = [
        ("validate", 0.0, validate),
        ("observe", model_start, observe),
        ("rank", model_start + observe, rank),
        ("model host round trip", model_start + observe + rank, refresh - observe - rank),
    ]
    return {
        "model": [part for part in model if part[2] > 0],
        "graph": [("graph_upsert", validate, upsert)] if upsert else [],
        "publish": [("publish", model_start + refresh, ms("publish"))] if ms("publish") else [],
    }


def _plot_stages(runs: list[RateRun], path: Path, plt, waits_for_graph: bool) -> None:
    """Per run, one horizontal bar per lane on a shared time axis: the lanes overlap in time, so stacking their
    stages would add up time that is spent at once."""
    colours = {stage: f"C{k}" for k, stage in enumerate(LANE_STAGES)}
    fig, axes = plt.subplots(len(runs), 1, sharex=True, squeeze=False, figsize=(9, max(3.0, 0.8 + 1.15 * len(runs))))
    for ax, run in zip(axes[:, 0], runs):
        stage_ms = run.result["stage_ms_per_batch"]
        for row, (lane, parts) in enumerate(lane_intervals(stage_ms, waits_for_graph).items()):
            for stage, start, length in parts:
                ax.barh(row, length, left=start, height=0.7, color=colours[stage], label=stage)
        if stage_ms.get("batch"):
            ax.axvline(
                stage_ms["batch"],
                color="black",
                linestyle="--",
                label="whole batch, taken -> acked\n(past the bars: the graph write\ngathering batches, or lanes\nbusy with earlier batches)",
            )
        ax.set_yticks(range(len(LANES)), [f"{lane} lane" for lane in LANES], fontsize="small")
        ax.invert_yaxis()
        ax.set_title(run.label, loc="left", fontsize="small")
    axes[-1, 0].set_xlabel("ms since the micro-batch was taken (mean stage times, every worker's batches)")
    axes[-1, 0].set_xlim(left=0)
    by_label = {}
    for ax in axes[:, 0]:
        handles, labels = ax.get_legend_handles_labels()
        by_label.update(zip(labels, handles))
    fig.suptitle("Where a batch's time goes, per run (lanes side by side run at the same time)", fontsize="medium")
    fig.tight_layout(rect=(0, 0, 0.75, 1))
    # to the right of the axes: inside, it hid the bars
    fig.legend(by_label.values(), by_label.keys(), loc="center left", bbox_to_anchor=(0.75, 0.5), fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend, right of the axes, included
    plt.close(fig)


def _plot_workers(runs: list[RateRun], path: Path, plt) -> None:
    """Per worker count: the output rate (bars, one per input rate, labelled with the CPU per event) and the
    freshness p99 (markers, on a second axis)."""
    counts, rates = sorted({r.workers for r in runs}), sorted({r.rate for r in runs})
    width = 0.8 / len(rates)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    right = ax.twinx()
    for j, rate in enumerate(rates):
        chosen = sorted((r for r in runs if r.rate == rate), key=lambda r: r.workers)
        xs = [counts.index(r.workers) + (j - (len(rates) - 1) / 2) * width for r in chosen]
        bars = ax.bar(
            xs,
            [r.result["achieved_output_rate"] for r in chosen],
            width,
            color=f"C{j}",
            alpha=0.6,
            label=f"output rate, {rate:g}/s in",
        )
        ax.bar_label(
            bars, [f"{r.result['cpu_ms_per_event']['total']} ms\nCPU/event" for r in chosen], fontsize="x-small"
        )
        p99 = [r.result["freshness_s"]["p99_s"] for r in chosen]
        right.plot(
            xs,
            [math.nan if v is None else v for v in p99],
            marker="o",
            markeredgecolor="black",
            color=f"C{j}",
            linestyle="--",
            label=f"freshness p99, {rate:g}/s in",
        )
    right.axhline(SUSTAINABLE_P99_S, color="grey", linestyle=":", label=f"sustainable: p99 < {SUSTAINABLE_P99_S:g} s")
    ax.set_xticks(range(len(counts)), [f"{n} worker{'s' if n > 1 else ''}" for n in counts])
    ax.set(ylabel="events/s reflected by a list (bars)", title="Throughput and freshness per worker count")
    ax.set_ylim(0, 1.2 * max([r.result["achieved_output_rate"] for r in runs] + [1.0]))  # room for the labels
    right.set(ylabel="freshness p99, s (markers)")
    right.set_ylim(bottom=0)
    handles, names = ax.get_legend_handles_labels()
    more_handles, more_names = right.get_legend_handles_labels()
    # below the axes: inside, it covered the bars
    ax.legend(
        handles + more_handles,
        names + more_names,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=2,
        fontsize="small",
    )
    fig.subplots_adjust(bottom=0.25, right=0.86)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # every legend row, however many runs
    plt.close(fig)
