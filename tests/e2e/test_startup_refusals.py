"""A worker the graph server refuses for good stops at start-up, before it joins the consumer group: with a wrong
password it used to join, take partitions and process nothing (495 of 1,000 events held back for ~95 s in a
two-worker group, every lag gauge at 0)."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import free_port


def worker_env(server_env: dict, unique: str, **settings: str) -> dict:
    import os

    return {
        **os.environ,
        **server_env,
        "STREAMREC_TOPIC_PREFIX": unique,
        "STREAMREC_APP_ID": unique + "app",
        "STREAMREC_METRICS_PORT": str(free_port()),
        **{f"STREAMREC_{name.upper()}": value for name, value in settings.items()},
    }


def start_worker(env: dict, timeout_s: float = 120) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "streamrec", "worker"], env=env, capture_output=True, text=True, timeout=timeout_s
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def test_a_worker_with_a_wrong_graph_password_exits_2_with_one_line_before_joining_the_group(server_env, unique):
    status, output, seconds = start_worker(worker_env(server_env, unique, neo4j_password="not-the-password"))
    assert status == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0] and "STREAMREC_NEO4J_PASSWORD" in lines[0]
    assert "Traceback" not in output and "not-the-password" not in output
    assert seconds < 60


def test_a_worker_pointed_at_a_missing_database_exits_2_with_one_line(server_env, unique):
    status, output, _ = start_worker(worker_env(server_env, unique, neo4j_database="nosuchdb"))
    assert status == 2, output
    assert len(output.strip().splitlines()) == 1 and "no database 'nosuchdb'" in output


def test_a_pinned_version_the_model_host_refuses_stops_the_worker_with_one_line(server_env, unique, tmp_path):
    """Its digest matches, so the worker's check lets it through; the model host refuses it, and a pin is what the
    operator asked for: no fallback to the baseline, exit 2 (the worker used to start serving the baseline)."""
    from version_folders import write_hostile_version

    marker = tmp_path / "payload-ran"
    write_hostile_version(tmp_path / "models", "evil", marker)
    env = worker_env(server_env, unique, model_dir=str(tmp_path / "models"), model_version="evil")
    status, output, _ = start_worker(env)
    assert status == 2, output
    refusal = [line for line in output.strip().splitlines() if "STREAMREC_MODEL_VERSION=evil" in line]
    assert len(refusal) == 1 and "never loaded" in refusal[0] and "weights_only" not in output
    assert "Traceback" not in output and not marker.exists()
