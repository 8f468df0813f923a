"""`streamrec gpu-check` and the GPU parts of `streamrec bench-refresh`, at small sizes on the CPU: the commands
deploy/gpu/gpu_check_and_bench.sh runs on a GPU machine (there with --device cuda)."""

import json
from pathlib import Path

import pytest
import torch

from streamrec.tools.cli import main
from streamrec.tools.commands import bench_refresh, gpu_check

REPO = Path(__file__).resolve().parents[3]
SMALL = ["--events", "1500", "--users", "150", "--items", "100", "--dim", "16", "--threads", "1"]


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No real data set in reach: the benches use their synthetic edges, as on the GPU machine."""
    monkeypatch.setenv("STREAMREC_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))


def test_gpu_check_on_the_cpu_passes_and_says_it_compared_the_cpu_with_itself(tmp_path, no_data):
    assert main(["gpu-check", "--device", "cpu", "--out", str(tmp_path), *SMALL]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["passed"] and report["device"] == "cpu" and report["device_name"]
    assert "compare the CPU with itself" in report["compared_with"]
    names = {c["name"] for c in report["checks"]}
    assert {
        "incremental_vs_full_trained_on_device",
        "embeddings_device_checkpoint_loaded",
        "scores_device_checkpoint_after_more_events",
        "top20_cpu_checkpoint_loaded",
    } <= names
    for check in report["checks"]:
        assert check["passed"] and check["value"] <= check["threshold"], check
    incremental = next(c for c in report["checks"] if c["name"].startswith("incremental"))
    assert incremental["peak_stale"] > 0 and incremental["stale_left"] == 0  # the stale path was exercised
    assert (tmp_path / "trained-on-device" / "model.pt").exists()


def test_gpu_check_exits_non_zero_when_a_check_fails(tmp_path, no_data):
    # a negative tolerance: every measured |Δ| (>= 0) is over it
    assert main(["gpu-check", "--device", "cpu", "--out", str(tmp_path), "--tolerance", "-1", *SMALL]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not report["passed"] and not any(c["passed"] for c in report["checks"] if c["threshold"] == -1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_gpu_check_without_a_gpu_says_so_and_fails(tmp_path, no_data):
    assert main(["gpu-check", "--device", "cuda", "--out", str(tmp_path), *SMALL]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["error"] == "no CUDA device visible to torch" and not report["passed"]


def test_a_check_that_raises_is_a_failed_check_and_the_others_still_run():
    checks = gpu_check.Checks(1e-4)
    gpu_check._step(checks, "breaks", lambda: 1 / 0)
    gpu_check._step(checks, "works", lambda: checks.add("fine", 0.0, "nothing"))
    assert [(c["name"], c["passed"]) for c in checks.rows] == [("breaks", False), ("fine", True)]
    assert "ZeroDivisionError" in checks.rows[0]["error"]


@pytest.mark.slow  # a whole bench-refresh command
def test_bench_refresh_gpu_figures_keep_the_docs_table_keys(tmp_path, no_data):
    from streamrec.tools.docs_tables import refresh_markdown

    assert (
        main(
            [
                "bench-refresh",
                "--device",
                "cpu",
                "--out",
                str(tmp_path),
                "--scales",
                "3000",
                "--batch-sizes",
                "1,100",
                "--events",
                "40",
                "--min-batches",
                "2",
                "--repeats",
                "1",
                "--serve-batch",
                "50",
                "--serve-repeats",
                "2",
                "--dtype",
                "both",
                "--topk-items",
                "2000",
                "--topk-users",
                "60",
                "--topk-chunk",
                "25",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "bench_refresh.json").read_text())
    assert report["device"] == "cpu" and report["device_name"] and report["environment"]["torch"]
    row = report["results"][0]
    assert row["source"].startswith("synthetic") and "200,000 users" in row["source"]
    assert row["full_node_embeddings_per_s"] == pytest.approx(row["nodes"] / row["full_recompute_s"], rel=1e-3)
    one, hundred = row["micro_batches"]
    assert (one["events_timed"], hundred["events_timed"]) == (40, 200)  # a size above --events: --min-batches of it
    assert one["nodes_refreshed"] >= 40 and one["node_embeddings_per_s"] > 0
    assert row["serve"]["batch_size"] == 50 and row["serve"]["total_s_median"] > 0
    assert 0.0 <= row["bf16"]["top20_overlap"] <= 1.0 and row["bf16"]["users_compared"] > 0
    float32, bf16 = report["topk"]
    assert (float32["dtype"], bf16["dtype"], float32["items"], float32["users"]) == ("float32", "bfloat16", 2000, 60)
    assert 0.0 <= bf16["top20_overlap_vs_float32"] <= 1.0
    table = refresh_markdown([report])  # docs_tables still renders it, naming the device
    assert "| 3,000 | synthetic Zipf edges | " in table and f"(device cpu ({report['device_name']}), " in table
    assert (tmp_path / "bench_refresh.png").stat().st_size > 0


def test_bench_refresh_sizes_and_overlap():
    assert bench_refresh.synthetic_shape(1_000_000) == (200_000, 20_000)  # the docs' 1M figures unchanged
    assert bench_refresh.synthetic_shape(10_000_000) == (2_000_000, 200_000)
    assert [bench_refresh.events_for(size, 1000, 3) for size in (1, 100, 1000, 10_000)] == [1000, 1000, 3000, 30_000]
    a = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    b = torch.tensor([[4, 3, 2, 1], [5, 6, 0, 9]])
    assert bench_refresh._overlap(a, b) == pytest.approx(0.75)


def test_refresh_under_bf16_autocast_keeps_a_float32_store_close_to_float32():
    """bf16 serving (bench-refresh --dtype bf16): the layers compute in bf16 under autocast, but the layer cache
    and the store stay float32 (writing bf16 rows into them raised "Index put requires the source and
    destination dtypes match")."""
    from model_server.tgat import TGATConfig, build_streamrec

    stream = gpu_check.synthetic_events(300, 40, 30)
    models = []
    for autocast in (False, True):
        rec = build_streamrec(TGATConfig(dim=16, k=5), device="cpu", text=False, seed=1)
        rec.observe(stream.slice(0, 200))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            rec.observe(stream.slice(200, 300))
        models.append(rec)
    exact, bf16 = (rec.store.embedding[: rec.graph.num_nodes] for rec in models)
    assert bf16.dtype == torch.float32
    assert float((bf16 - exact).abs().max()) < 0.05 * float(exact.abs().max())
    assert not torch.equal(bf16, exact)  # the second observe did run in bf16


def test_the_gpu_script_parses_and_names_every_step():
    import subprocess

    script = REPO / "deploy" / "gpu" / "gpu_check_and_bench.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for needed in (
        'gpu-check --device "$DEVICE"',
        'bench-refresh --device "$DEVICE"',
        "--dtype both",
        "torch==2.13.0",
        "${OUT:-",
    ):
        assert needed in text


def test_bench_refresh_counts_the_nodes_of_refreshes_and_of_the_sweep():
    from model_server.tgat import TGATConfig, build_streamrec

    rec = build_streamrec(TGATConfig(dim=16, k=5), device="cpu", text=False, max_fanout=5, sweep_per_observe=0)
    stream = gpu_check.synthetic_events(600, 40, 30)
    rec.observe(stream.slice(0, 500))
    entry = bench_refresh._incremental(rec, stream, 500, 20, 100, 1.0, lambda: None)
    assert entry["stale_marked"] > 0 and entry["nodes_swept"] == entry["stale_marked"]
    assert entry["nodes_refreshed"] >= 20 and rec.staleness == 0
    assert "refresh" not in vars(getattr(rec, "refresher", rec))  # the counter is gone again
