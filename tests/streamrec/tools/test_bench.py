import argparse

import pytest

from stream.events import MIN_TS_MS
from streamrec.tools.bench import (
    RateRun,
    _plot,
    cpu_by_role,
    cpu_ms_per_event,
    cycled_columns,
    events_per_cpu_second,
    highest_sustainable_rates,
    histogram_quantile,
    lane_intervals,
    model_waits_for_graph,
    partitions_for,
    process_name,
    role_of,
)
from streamrec.tools.datasets import Dataset
from streamrec.tools.commands.bench import configure, parse_worker_counts, run


def _histogram(counts_by_upper: dict[float, int]):
    samples, cumulative = [], 0
    for upper, count in sorted(counts_by_upper.items()):
        cumulative += count
        samples.append(("m_bucket", {"le": str(upper)}, float(cumulative)))
    samples.append(("m_bucket", {"le": "+Inf"}, float(cumulative)))
    samples.append(("m_count", {}, float(cumulative)))
    return samples


def test_histogram_quantile_interpolates_inside_the_bucket():
    samples = _histogram({0.1: 50, 0.2: 40, 1.0: 10})
    assert histogram_quantile(samples, "m", 0.5) == 0.1  # the 50th of 100 is the last of the first bucket
    assert histogram_quantile(samples, "m", 0.7) == 0.15  # halfway through the 40 in (0.1, 0.2]
    assert histogram_quantile(samples, "m", 0.95) == 0.6  # halfway through the 10 in (0.2, 1.0]


def test_histogram_quantile_without_observations_or_beyond_the_buckets():
    assert histogram_quantile(_histogram({0.1: 0}), "m", 0.5) is None
    beyond = _histogram({0.1: 1}) + [("m_count", {}, 1.0)]  # a second count: one observation past every bucket
    assert histogram_quantile(beyond, "m", 0.99) is None


def test_histogram_quantile_sums_the_workers_buckets():
    # two workers' /metrics, concatenated: each names every bound once
    samples = _histogram({0.1: 25, 0.2: 20, 1.0: 5}) + _histogram({0.1: 25, 0.2: 20, 1.0: 5})
    assert histogram_quantile(samples, "m", 0.7) == 0.15


def test_partitions_are_a_multiple_of_every_worker_count_and_at_least_the_setting():
    assert partitions_for([1, 2, 4], 4) == 4
    assert partitions_for([1], 4) == 4  # the default: the setting, as before
    assert partitions_for([3], 4) == 6  # 4 over 3 workers would leave one idle
    assert partitions_for([2, 3], 4) == 6
    assert partitions_for([4, 8], 4) == 8


def test_processes_are_named_by_role_and_index_only_with_several_workers():
    assert process_name("worker", 0, 1) == "worker"
    assert [process_name("model_host", k, 2) for k in range(2)] == ["model_host0", "model_host1"]
    assert role_of("model_host1") == "model_host" and role_of("worker") == "worker"


def test_cpu_per_event_sums_each_role_over_the_workers():
    before = {"worker0": 10.0, "worker1": 20.0, "model_host0": 5.0, "model_host1": 7.0}
    after = {"worker0": 11.0, "worker1": 21.5, "model_host0": 7.0, "model_host1": 10.0, "ended": 1.0}
    spent = cpu_by_role(before, after)
    assert spent == {"worker": 2.5, "model_host": 5.0}
    assert cpu_ms_per_event(spent, 1000) == {"worker": 2.5, "model_host": 5.0, "total": 7.5, "all_processes": None}
    assert events_per_cpu_second(900, spent) == 120.0


def test_cpu_per_event_counts_the_servers_and_the_load_generator_apart():
    before = {"worker": 1.0, "model_host": 1.0, "kafka": 10.0, "neo4j": 20.0, "load_generator": 3.0}
    after = {"worker": 2.0, "model_host": 3.0, "kafka": 11.0, "neo4j": 22.0, "load_generator": 7.0}
    per_event = cpu_ms_per_event(cpu_by_role(before, after), 1000)
    assert per_event == {
        "worker": 1.0,
        "model_host": 2.0,
        "kafka": 1.0,
        "neo4j": 2.0,
        "load_generator": 4.0,
        "total": 3.0,
        "all_processes": 6.0,
    }
    assert role_of("tansu") == "kafka" and role_of("arcadedb") == "neo4j"


def test_cpu_per_event_without_events_or_cpu_is_none():
    assert cpu_ms_per_event({"worker": 1.0, "model_host": 0.0}, 0) == {
        "worker": None,
        "model_host": None,
        "total": None,
        "all_processes": None,
    }
    assert events_per_cpu_second(10, cpu_by_role({}, {})) is None


def test_highest_sustainable_rate_per_worker_count():
    results = [
        {"workers": 1, "target_rate": 100.0, "sustainable": True},
        {"workers": 1, "target_rate": 1000.0, "sustainable": False},
        {"workers": 2, "target_rate": 100.0, "sustainable": True},
        {"workers": 2, "target_rate": 1000.0, "sustainable": True},
        {"workers": 4, "target_rate": 100.0, "sustainable": False},
    ]
    assert highest_sustainable_rates(results) == {"1": 100.0, "2": 1000.0, "4": None}


def test_worker_counts_are_positive_integers_separated_by_commas():
    assert parse_worker_counts("1,2,4") == [1, 2, 4]
    assert parse_worker_counts(" 4, 1 ,2,2 ") == [1, 2, 4]
    for bad in ("", "0", "1,-2", "2.5", "two", ","):
        with pytest.raises(ValueError, match="positive integers"):
            parse_worker_counts(bad)


def test_bad_workers_stop_the_command_with_exit_2(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--dataset", "ml-100k", "--workers", "1,x", "--out", str(tmp_path)])
    assert run(args, settings=None) == 2
    assert "--workers '1,x' must be positive integers" in capsys.readouterr().out


def _fake_run(workers: int, rate: float, output: float, p99: float | None) -> RateRun:
    run = RateRun(rate, workers, samples=[{"t": float(t), "sent": 10 * t, "reflected": 9 * t} for t in range(5)])
    run.result = {
        "achieved_output_rate": output,
        "freshness_s": {"p99_s": p99},
        "freshness_sorted_s": [0.1, 0.2],
        "stage_ms_per_batch": {"observe": 3.0, "batch": 5.0},
        "cpu_ms_per_event": {"worker": 0.4, "model_host": 0.8, "total": 1.2},
    }
    return run


def test_the_plots_are_written_for_several_worker_counts_and_rates(tmp_path):
    runs = [_fake_run(n, rate, 0.95 * rate, None if n == 4 else 0.3 * n) for n in (1, 2, 4) for rate in (100, 1000)]
    _plot(runs, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"freshness_cdf.png", "stages.png", "lag.png", "workers.png"}
    assert runs[3].label == "2 workers, 1000/s" and runs[0].label == "1 worker, 100/s"


def test_cycled_events_are_unique_and_a_data_set_from_before_2000_is_shifted_into_the_contract():
    data = Dataset(
        "old", users=["u1", "u2"], items=["i1", "i2"], types=["view", "purchase"], ts=[874_724_710_000, 874_724_720_000]
    )  # 1997, like ML-100K
    columns = cycled_columns(data, 5, "run-")
    assert columns["event_ids"] == [f"run-{k}" for k in range(5)]
    assert columns["users"] == ["u1", "u2", "u1", "u2", "u1"] and columns["types"][1] == "purchase"
    assert min(columns["ts"]) >= MIN_TS_MS and columns["ts"][1] - columns["ts"][0] == 10_000  # gaps kept


STAGE_MS = {
    "validate": 1.0,
    "graph_upsert": 30.0,
    "observe": 12.0,
    "rank": 4.0,
    "refresh": 20.0,
    "publish": 6.0,
    "batch": 38.0,
}


def test_the_graph_lane_runs_beside_the_model_and_the_lists_go_out_after_the_refresh():
    lanes = lane_intervals(STAGE_MS)
    assert lanes["model"] == [
        ("validate", 0.0, 1.0),
        ("observe", 1.0, 12.0),
        ("rank", 13.0, 4.0),
        ("model host round trip", 17.0, 4.0),
    ]
    assert lanes["graph"] == [("graph_upsert", 1.0, 30.0)]  # from the end of validate, not after the model
    assert lanes["publish"] == [("publish", 21.0, 6.0)]


def test_a_model_that_must_see_each_event_once_waits_for_the_upsert():
    lanes = lane_intervals(STAGE_MS, model_waits_for_graph=True)
    assert lanes["model"][1] == ("observe", 31.0, 12.0)
    assert lanes["publish"] == [("publish", 51.0, 6.0)]


def test_stages_a_run_did_not_measure_leave_no_bars():
    lanes = lane_intervals({"validate": 1.0, "observe": 2.0, "rank": None, "graph_upsert": None})
    assert lanes == {"model": [("validate", 0.0, 1.0), ("observe", 1.0, 2.0)], "graph": [], "publish": []}


def test_no_servable_model_waits_for_the_graph(tmp_path):
    # the co-occurrence baseline (no checkpoint) is idempotent as the temporal GAT is: neither waits for the upsert
    assert model_waits_for_graph(None) is False and model_waits_for_graph(tmp_path) is False
