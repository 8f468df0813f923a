"""`streamrec bench`: freshness and throughput of the real pipeline at several input rates.

For each rate, a fresh worker (the temporal GAT checkpoint, or the baseline) consumes a real data set
replayed at that rate for a fixed time; a consumer of `recommendations` matches every list to the events it
reflects (streamrec.tools.live.FreshnessTracker). Freshness = list received - event sent, on one machine's clock.
Lag is counted, never read from the broker's end offsets: events sent minus events reflected by a list.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .datasets import Dataset
from .live import (FreshnessTracker, ListCollector, WorkerProcess, free_port, isolated_env, scrape, totals,
                   wait_for_items)
from .replay_source import item_records
from .servers import running_local_services
from ..runtime.settings import load_settings

STAGES = ("intake", "arrival", "validate", "graph_upsert", "observe", "rank", "publish", "batch")
SUSTAINABLE_P99_S = 1.0


@dataclass
class RateRun:
    rate: float
    samples: list[dict] = field(default_factory=list)  # time series: sent, reflected, processed, cpu, rss
    result: dict = field(default_factory=dict)


def cycled_columns(data: Dataset, n: int, run_id: str) -> dict:
    """n events: the data set in time order, repeated when n is larger. Event ids are unique per run; user and
    item ids are the data set's own, so every run sees one data set's catalogue."""
    m = len(data)
    pick = [k % m for k in range(n)]
    return {"event_ids": [f"{run_id}{k}" for k in range(n)],
            "users": [data.users[k] for k in pick], "items": [data.items[k] for k in pick],
            "types": [data.types[k] for k in pick], "ts": [data.ts[k] for k in pick]}


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
        during a run shows it (the local broker's fetches cost more as its log grows; see README, Scaling)."""
        def mean(values):
            return round(sum(values) / len(values), 1) if values else None

        def quarters(values):
            n = max(1, len(values) // 4)
            return {"cpu_percent_first_quarter": mean(values[:n]), "cpu_percent_last_quarter": mean(values[-n:])}

        return {name: {"cpu_percent_mean": mean(v), **quarters(v), "peak_rss_mib": round(self.peak_rss[name] / 2**20, 1)}
                for name, v in self.cpu.items()}


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


def _stage_seconds(samples) -> dict:
    sums, counts = {}, {}
    for name, labels, value in samples:
        stage = labels.get("stage") if name.startswith("streamrec_stage_seconds") else \
            name.removeprefix("streamrec_").rsplit("_seconds", 1)[0]
        if stage not in STAGES:
            continue
        if name.endswith("_sum"):
            sums[stage] = sums.get(stage, 0.0) + value
        elif name.endswith("_count"):
            counts[stage] = counts.get(stage, 0.0) + value
    batches = counts.get("batch", 0)
    return {stage: round(sums.get(stage, 0.0) / batches * 1000, 2) if batches else None for stage in STAGES}


def _lag_slope(samples: list[dict], send_end: float) -> float | None:
    """Events/s by which the lag grew over the second half of the sending window (least squares)."""
    points = [(s["t"], s["sent"] - s["reflected"]) for s in samples if s["t"] <= send_end]
    points = points[len(points) // 2:]
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_l = sum(lag for _, lag in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (lag - mean_l) for t, lag in points) / var if var else None


def run_rate(settings, env: dict, data: Dataset, rate: float, duration_s: float, out_dir: Path, service_pids: dict,
             drain_s: float = 30.0) -> RateRun:
    from stream.replay import make_producer, replay
    from stream.topics import TopicNames, ensure_topics

    run = RateRun(rate)
    prefix = f"r{int(rate)}-{int(time.time())}-"
    names = TopicNames.with_prefix(prefix)
    worker_env = {**env, "STREAMREC_TOPIC_PREFIX": prefix, "STREAMREC_APP_ID": prefix + "bench",
                  "STREAMREC_METRICS_PORT": str(free_port())}
    ensure_topics(settings.bootstrap, names, settings.partitions, settings.replication_factor, **settings.kafka_client_options())
    worker = WorkerProcess(worker_env, out_dir / f"worker-{int(rate)}.log").start(until_ready=True)
    columns = cycled_columns(data, int(rate * duration_s), prefix)
    tracker = FreshnessTracker(columns["event_ids"], columns["users"])
    collector = ListCollector(settings.bootstrap, names.recommendations, tracker.on_list, settings.kafka_client_options(),
                              settings.fetch_max_wait_ms)
    collector.start()
    items = item_records(data, set(data.items))

    def on_sample(sample):
        sample.update(sent=len(tracker.sent_times), reflected=len(tracker.freshness),
                      processed=totals(scrape(worker.metrics_port)).get("streamrec_events_total", 0.0))
        run.samples.append(sample)

    sampler = ProcessSampler({"worker": worker.pid, "model_host": model_host_pid(worker.pid), **service_pids,
                              "bench": os.getpid()}, on_sample)
    producer = make_producer(settings.bootstrap, **settings.kafka_client_options())
    try:
        # items first, untimed: the clock starts when the worker has applied them (encoding a catalogue's text
        # takes seconds, which would otherwise land on the first timed events)
        replay(producer, names, event_ids=[], users=[], items=[], types=[], ts=[], item_records=items)
        wait_for_items(worker.metrics_port, len(items))
        sampler.start()
        started = time.time()
        stats = replay(producer, names, rate=rate, sent_times=tracker.sent_times, **columns)
        send_end = time.time()
        deadline = time.monotonic() + drain_s
        while len(tracker.freshness) < stats.events_sent and time.monotonic() < deadline:
            time.sleep(0.2)
        finished = time.time()
        sampler.stopping.set()
        sampler.join(5)
        metrics = scrape(worker.metrics_port)
    finally:
        producer.close()
        collector.stop()
        worker.stop()
    freshness = tracker.summary()
    slope = _lag_slope(run.samples, send_end)
    reflected_in_window = sum(1 for t in tracker.reflected_at if t <= send_end)
    run.result = {
        "target_rate": rate,
        "events_sent": stats.events_sent,
        "achieved_input_rate": round(stats.events_sent / (send_end - started), 1),
        "achieved_output_rate": round(reflected_in_window / (send_end - started), 1),
        "events_reflected": freshness["events_reflected"],
        "unreflected_after_drain": stats.events_sent - freshness["events_reflected"],
        "drain_seconds": round(finished - send_end, 2),
        "freshness_s": {k: v for k, v in freshness.items() if k != "events_reflected"},
        "lag_slope_events_per_s": None if slope is None else round(slope, 1),
        "lists_received": collector.count,
        # inside the worker: record appended to the broker -> its list acknowledged (histogram, interpolated);
        # the rest of the end-to-end figure is the producer, the broker's delivery and this consumer
        "worker_freshness_s": {f"p{round(q * 100)}_s": histogram_quantile(metrics, "streamrec_freshness_seconds", q)
                               for q in (0.5, 0.99)},
        "stage_ms_per_batch": _stage_seconds(metrics),
        "events_per_batch": _per_batch(metrics),
        "processes": sampler.summary(),
        "models": tracker.models,
    }
    p99 = freshness["p99_s"]
    run.result["sustainable"] = bool(
        p99 is not None and p99 < SUSTAINABLE_P99_S and run.result["unreflected_after_drain"] == 0
        and run.result["achieved_input_rate"] >= 0.9 * rate and (slope is None or slope <= 0.02 * rate))
    run.result["freshness_sorted_s"] = sorted(tracker.freshness)  # for the CDF plot; dropped from bench.json
    return run


def histogram_quantile(samples, name: str, q: float) -> float | None:
    """Prometheus-style quantile of a histogram: linear within the bucket that holds it."""
    buckets = sorted((float(labels["le"]), value) for metric, labels, value in samples
                     if metric == f"{name}_bucket" and labels.get("le") not in (None, "+Inf"))
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


def run_bench(data: Dataset, rates: list[float], duration_s: float, out_dir: Path, model_dir: Path | None,
              warmup_s: float = 10.0) -> dict:
    base = load_settings()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for rate in rates:
        run = _run_on_fresh_servers(base, data, rate, duration_s, out_dir, model_dir, warmup_s)
        r = run.result
        print(f"bench:   input {r['achieved_input_rate']}/s, output {r['achieved_output_rate']}/s, freshness "
              f"p50 {r['freshness_s']['p50_s']} s p99 {r['freshness_s']['p99_s']} s, "
              f"{'sustainable' if r['sustainable'] else 'NOT sustainable'}")
        runs.append(run)
    sustainable = [r.rate for r in runs if r.result["sustainable"]]
    from model_server.evaluation.report import git_commit

    report = {
        "command": "streamrec " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "streamrec" else " ".join(sys.argv),
        "git": git_commit(Path(__file__).resolve().parent),
        "stack": stack_description(base),
        "dataset": data.name, "checksums": data.checksums, "duration_s": duration_s, "warmup_s": warmup_s,
        "model_dir": str(model_dir) if model_dir else None,
        "highest_sustainable_rate": max(sustainable) if sustainable else None,
        "rule": f"p99 freshness < {SUSTAINABLE_P99_S} s, every event reflected within the drain time, input rate "
                f">= 90% of target, lag not growing (slope <= 2% of the rate)",
        "machine": {"cpus": os.cpu_count()},
        "runs": [{k: v for k, v in r.result.items() if k != "freshness_sorted_s"} | {"samples": r.samples}
                 for r in runs],
    }
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    _plot(runs, out_dir)
    return report


def stack_description(settings) -> dict:
    """Which servers the runs used: the local stack's, or the user's own."""
    return {"local_stack": settings.local_stack if settings.uses_local_kafka or settings.uses_local_graph else None,
            "kafka": "local" if settings.uses_local_kafka else settings.bootstrap,
            "graph": "local" if settings.uses_local_graph else settings.bolt_uri}


def _run_on_fresh_servers(base, data: Dataset, rate: float, duration_s: float, out_dir: Path, model_dir: Path | None,
                          warmup_s: float) -> RateRun:
    """Each rate gets its own local servers (an empty graph: rates do not inherit each other's edges), a
    warm-up that is not reported (the graph server's JVM compiles its hot paths during the first thousands of
    upserts), then the measured run. Real servers (STREAMREC_KAFKA_BOOTSTRAP / _NEO4J_URI) are used as they are."""
    env = isolated_env(base, out_dir / f"home-{rate:g}")
    env["STREAMREC_MODEL_DIR"] = str(model_dir or out_dir / "no-model")
    settings = load_settings(env)
    with running_local_services(settings, report=lambda line: print(f"bench: {line}")) as services:
        pids = {s.name: s.pid() for s in services}
        if warmup_s > 0:
            print(f"bench: warm-up, {warmup_s:g} s at 500 events/s (not reported)")
            run_rate(settings, env, data, 500.0, warmup_s, out_dir, pids)
        print(f"bench: {data.name} at {rate:g} events/s for {duration_s:g} s")
        return run_rate(settings, env, data, rate, duration_s, out_dir, pids)


def _plot(runs: list[RateRun], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        values = run.result["freshness_sorted_s"]
        if values:
            ax.plot(values, [(k + 1) / len(values) for k in range(len(values))], label=f"{run.rate:g} events/s")
    ax.set(xscale="log", xlabel="freshness (s): list received - event sent", ylabel="share of events",
           title="Freshness CDF per input rate")
    ax.axvline(SUSTAINABLE_P99_S, color="grey", linestyle=":")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "freshness_cdf.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5.5))
    # the ages (intake, arrival) come before the batch is taken: bench.json only
    stages = [s for s in STAGES if s not in ("intake", "arrival", "batch")]
    bottom = [0.0] * len(runs)
    labels = [f"{r.rate:g}/s" for r in runs]
    for stage in stages:
        values = [r.result["stage_ms_per_batch"].get(stage) or 0.0 for r in runs]
        ax.bar(labels, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values)]
    totals_ms = [r.result["stage_ms_per_batch"].get("batch") or 0.0 for r in runs]
    ax.scatter(labels, totals_ms, marker="_", s=3000, color="black", zorder=3,
               label="whole batch, taken -> acked\n(upsert and publish overlap the model)")
    ax.set(ylabel="ms per micro-batch (mean)", title="Where a batch's time goes, per input rate")
    ax.set_ylim(0, 1.1 * max(totals_ms + bottom + [1.0]))
    # below the axes: inside, the legend hid the tallest bars
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize="small")
    fig.subplots_adjust(bottom=0.25)
    fig.savefig(out_dir / "stages.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        if run.samples:
            t0 = run.samples[0]["t"]
            ax.plot([s["t"] - t0 for s in run.samples], [s["sent"] - s["reflected"] for s in run.samples],
                    label=f"{run.rate:g} events/s")
    ax.set(xlabel="seconds", ylabel="events sent, not yet reflected by a list", title="Lag over time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "lag.png", dpi=120)
    plt.close(fig)
