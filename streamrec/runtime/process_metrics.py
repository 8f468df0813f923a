"""CPU seconds and resident memory of the worker's processes, read from /proc at scrape time.

The worker is two processes: the event loop (Kafka, the graph, HTTP) and the model host (model_host.py, a child
of larger memory), which serves no endpoint of its own. prometheus_client's default process_* series describe
only the process answering /metrics, so a pod nearing its memory limit through its model host would not show.
These series name each process in a `process` label; their sum per worker is the pod's. Reading /proc by pid
asks nothing of the host (a request over its pipe would queue behind the model's work). GPU memory is known
only inside the host (torch.cuda): it comes back with the host's answers (streamrec_gpu_memory_bytes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROC = Path("/proc")
EVENT_LOOP, MODEL_HOST = "event_loop", "model_host"
Pid = Callable[[], "int | str | None"]  # the pid now ("self": the reading process), None while there is none


def cpu_and_memory(pid: int | str) -> tuple[float, int] | None:
    """(user + system CPU seconds, resident bytes) of a running process; None when it is gone, a zombie, or
    the system has no /proc (then the series are absent, as prometheus_client's own)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # after "pid (name)", whose name may hold spaces and parentheses: state, then proc(5)'s fields from 4 on
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):
        return None
    utime, stime, rss_pages = int(fields[11]), int(fields[12]), int(fields[21])
    return (utime + stime) / os.sysconf("SC_CLK_TCK"), rss_pages * os.sysconf("SC_PAGE_SIZE")


class ProcessStats(Collector):
    """One sample per watched process, labelled with its role."""

    def __init__(self, pids: dict[str, Pid]):
        self.pids = dict(pids)

    def watch(self, process: str, pid: Pid) -> None:
        self.pids[process] = pid

    def collect(self) -> Iterable[Metric]:
        cpu = CounterMetricFamily(
            "streamrec_process_cpu_seconds",
            "User and system CPU time of the worker's processes (event_loop, model_host)",
            labels=["process"],
        )
        memory = GaugeMetricFamily(
            "streamrec_process_resident_memory_bytes",
            "Resident memory of the worker's processes (event_loop, model_host); their sum is the pod's",
            labels=["process"],
        )
        for process, pid in self.pids.items():
            stats = _stats_of(pid)
            if stats is not None:
                cpu.add_metric([process], stats[0])
                memory.add_metric([process], stats[1])
        return [cpu, memory]


def _stats_of(pid: Pid) -> tuple[float, int] | None:
    current = pid()
    return None if current is None else cpu_and_memory(current)


# the process that serves /metrics is the event loop's; the worker adds its model host when it has started it
PROCESS_STATS = ProcessStats({EVENT_LOOP: lambda: "self"})
REGISTRY.register(PROCESS_STATS)
