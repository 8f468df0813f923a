"""examples/ run as a user runs them, against the session's Apache Kafka and Neo4j and a real worker: an example
that no longer works fails here. Input: CSVs the test writes from MovieLens-100K (real events)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import real_events
from conftest import REPO, consume_until, wait_for

EXAMPLES = REPO / "examples"
N_EVENTS = 300


def run_example(name: str, *args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def write_events_csv(path: Path, prefix: str, start: int = 0) -> tuple[list[str], list[str]]:
    """Events `start` to `start + N_EVENTS` of 2 * N_EVENTS spread over ML-100K, in the CSV format of
    `streamrec produce --events-csv`; returns (users, item ids) in file order."""
    data = real_events.spread(2 * N_EVENTS)
    part = slice(start, start + N_EVENTS)
    raw_items = data.items[part]
    users, items = [prefix + u for u in data.users[part]], [prefix + i for i in raw_items]
    with path.open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["user_id", "item_id", "type", "ts", "item_text"])
        for user, item, raw_item, kind, ts in zip(users, items, raw_items, data.types[part], data.ts[part]):
            out.writerow([user, item, kind, ts, data.item_info[raw_item].title])
    return users, items


def items_applied(port: int) -> float:
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "streamrec_items"
        for sample in family.samples
        if sample.name == "streamrec_items_total" and sample.labels.get("outcome") == "applied"
    )


def test_the_walkthrough_produce_read_look_up_train_and_serve(server_settings, worker_factory, unique, tmp_path):
    model_dir = tmp_path / "models"
    worker = worker_factory(
        {
            "STREAMREC_TOPIC_PREFIX": unique,
            "STREAMREC_APP_ID": unique + "app",
            "STREAMREC_MODEL_DIR": str(model_dir),
            "STREAMREC_MODEL_POLL_S": "1",
        }
    ).start()
    env = {"STREAMREC_KAFKA_BOOTSTRAP": server_settings.bootstrap, "STREAMREC_TOPIC_PREFIX": unique}
    users, items = write_events_csv(tmp_path / "events.csv", unique)

    produced = run_example("produce_events.py", "events.csv", env=env, cwd=tmp_path)
    assert produced.returncode == 0, produced.stderr
    assert f"sent {len(set(items))} items and {N_EVENTS} events" in produced.stdout
    last_id = f"{users[-1]}|{items[-1]}|"
    published = consume_until(
        server_settings.bootstrap,
        unique + "recommendations",
        lambda rs: any(json.loads(r.value)["last_event_id"].startswith(last_id) for r in rs),
    )
    assert any(json.loads(r.value)["last_event_id"].startswith(last_id) for r in published), "the last event's list"
    assert wait_for(lambda: items_applied(worker.metrics_port) >= len(set(items)), 30), "every item record applied"

    kept = run_example("keep_latest_lists.py", "--seconds", "8", "--out", "lists.json", env=env, cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    lists = json.loads((tmp_path / "lists.json").read_text())
    newest = {}
    for record in map(lambda r: json.loads(r.value), published):
        newest[record["user_id"]] = record  # one partition per user: the last record of a user is its newest
    assert set(lists) == set(users) and f"{len(set(users))} users' lists written" in kept.stdout
    assert lists[users[-1]]["items"] == newest[users[-1]]["items"]

    url = f"http://127.0.0.1:{worker.metrics_port}"
    looked_up = run_example("lookup.py", users[-1], "--url", url, "--top-k", "5", env=env, cwd=tmp_path)
    assert looked_up.returncode == 0, looked_up.stderr
    ranked = [line.split()[1] for line in looked_up.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert ranked == [item["item_id"] for item in lists[users[-1]]["items"][:5]]  # nothing happened since
    unknown = run_example("lookup.py", unique + "nobody", "--url", url, env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and f"no events of {unique}nobody yet" in unknown.stderr

    # train on the same CSV, promote, and the running worker serves it: in /readyz and in the lists it publishes
    serve_env = {
        **worker.env,
        "STREAMREC_MODEL_DIR": str(model_dir),
        "WORKER_URL": url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    served = subprocess.run(
        ["bash", str(EXAMPLES / "train_and_serve.sh"), "events.csv", "mine-1"],
        cwd=tmp_path,
        env={**os.environ, **serve_env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert served.returncode == 0, served.stdout + served.stderr
    assert f"the worker at {url} serves mine-1" in served.stdout
    assert (model_dir / "mine-1" / "model.pt").is_file() and "* mine-1" in " ".join(served.stdout.split())
    more_users, _ = write_events_csv(tmp_path / "more.csv", unique, start=N_EVENTS)
    assert run_example("produce_events.py", "more.csv", env=env, cwd=tmp_path).returncode == 0
    lists = consume_until(
        server_settings.bootstrap,
        unique + "recommendations",
        lambda rs: any(json.loads(r.value).get("model_version_name") == "mine-1" for r in rs),
    )
    newest = [json.loads(r.value) for r in lists if json.loads(r.value).get("model_version_name") == "mine-1"]
    assert newest and newest[0]["model"] == "streamrec" and newest[0]["user_id"] in more_users
