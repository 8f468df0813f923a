"""The worker's process collector: a real child process's CPU and memory appear under its own label, and move."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streamrec.runtime.process_metrics import EVENT_LOOP, ProcessStats, cpu_and_memory

# holds ~200 MB resident, then spins until killed
CHILD = "import time; ballast = bytearray(200 * 2**20); print('ready', flush=True)\nwhile True: sum(range(10_000))"


@pytest.fixture
def child():
    process = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.wait(10)


def samples(stats: ProcessStats) -> dict[tuple[str, str], float]:
    """(sample name, process label) -> value."""
    return {(s.name, s.labels["process"]): s.value for family in stats.collect() for s in family.samples}


def test_a_child_process_is_reported_under_its_label_and_its_cpu_time_grows(child):
    stats = ProcessStats({EVENT_LOOP: lambda: "self", "model_host": lambda: child.pid})
    first = samples(stats)
    time.sleep(0.5)
    second = samples(stats)

    assert first[("streamrec_process_resident_memory_bytes", "model_host")] > 200 * 2**20
    assert 0 < first[("streamrec_process_resident_memory_bytes", EVENT_LOOP)]
    assert (
        second[("streamrec_process_cpu_seconds_total", "model_host")]
        > first[("streamrec_process_cpu_seconds_total", "model_host")] + 0.1
    )  # it spins: ~0.5 s in 0.5 s
    # the two are told apart: this test process holds no 200 MB ballast
    assert (
        first[("streamrec_process_resident_memory_bytes", EVENT_LOOP)]
        != first[("streamrec_process_resident_memory_bytes", "model_host")]
    )


def test_a_process_that_has_exited_has_no_samples(child):
    child.kill()
    child.wait(10)
    assert cpu_and_memory(child.pid) is None
    stats = ProcessStats({"model_host": lambda: child.pid, "not_started": lambda: None})
    assert samples(stats) == {}


def test_the_exposition_names_follow_prometheus_conventions(child):
    registry = CollectorRegistry()
    registry.register(ProcessStats({"model_host": lambda: child.pid}))
    text = generate_latest(registry).decode()
    assert "# TYPE streamrec_process_cpu_seconds_total counter" in text
    assert 'streamrec_process_cpu_seconds_total{process="model_host"}' in text
    assert "# TYPE streamrec_process_resident_memory_bytes gauge" in text
    assert 'streamrec_process_resident_memory_bytes{process="model_host"}' in text
