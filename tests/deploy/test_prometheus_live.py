"""A real Prometheus scrapes a live worker during an end-to-end run; the streamrec series are there with sane
values, and every PromQL expression of the dashboard and the alert rules evaluates without error."""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

import real_events
from conftest import wait_for, REPO, free_port
from deploy_checks import ToolMissing, prometheus_binary
from promql import dashboard_and_rule_expressions
from stream.events import interaction_value
from stream.replay import make_producer
from stream.topics import TopicNames

N_EVENTS = 500


def query(port: int, expression: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?{urlencode({'query': expression})}"
    try:
        with urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except Exception as error:  # an HTTPError body holds Prometheus' error message
        body = getattr(error, "read", lambda: b"")()
        return json.loads(body) if body else {"status": "error", "error": str(error)}


def scalar(port: int, expression: str) -> float | None:
    result = query(port, expression).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(tmp_path):
    try:
        binary = prometheus_binary()
    except ToolMissing as missing:
        pytest.skip(str(missing))
    started = []

    def start(worker_port: int) -> int:
        port = free_port()
        rules = tmp_path / "alerts.yml"
        shutil.copy(REPO / "deploy" / "prometheus" / "alerts.yml", rules)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            "scrape_configs:\n"
            "  - job_name: streamrec-worker\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{worker_port}']}}]\n"
        )
        log = open(tmp_path / "prometheus.log", "wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        assert wait_for(lambda: query(port, "up").get("status") == "success", 30), (
            tmp_path / "prometheus.log"
        ).read_text()
        return port

    yield start
    for process in started:
        process.terminate()
        process.wait(20)


def test_prometheus_scrapes_a_live_worker_and_every_dashboard_and_alert_expression_evaluates(
    server_settings, worker_factory, prometheus, unique
):
    data = real_events.spread(N_EVENTS)  # real events (ML-100K) of about 400 users
    worker = worker_factory({"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app"}).start()
    worker_port = int(worker.env["STREAMREC_METRICS_PORT"])
    port = prometheus(worker_port)

    producer = make_producer(server_settings.bootstrap)
    names = TopicNames.with_prefix(unique)
    for k in range(N_EVENTS):
        producer.send(
            names.interactions,
            key=data.users[k].encode(),
            value=interaction_value(f"{unique}{k}", data.users[k], data.items[k], data.types[k], data.ts[k]),
        )
    producer.send(names.interactions, key=b"bad", value=b"{broken")
    producer.flush()
    producer.close()

    assert wait_for(lambda: scalar(port, "sum(streamrec_events_total)") == N_EVENTS + 1), scalar(
        port, "sum(streamrec_events_total)"
    )
    assert scalar(port, 'up{job="streamrec-worker"}') == 1
    assert scalar(port, 'sum(streamrec_dead_letters_total{reason="not_json"})') == 1
    assert scalar(port, "sum(streamrec_lists_published_total)") >= len(set(data.users[:N_EVENTS]))
    assert scalar(port, 'streamrec_model_info{model="cooccurrence"}') == 1
    # over the whole run (a rate() needs two scrapes that saw the counters move; the replay may fit in one)
    p99 = scalar(port, "histogram_quantile(0.99, sum(streamrec_freshness_seconds_bucket) by (le))")
    assert p99 is not None and 0 < p99 < 60
    upsert = 'stage="graph_upsert"'
    assert (
        0
        < scalar(port, f"sum(streamrec_stage_seconds_sum{{{upsert}}}) / sum(streamrec_stage_seconds_count{{{upsert}}})")
        < 30
    )

    failures = {}
    for expression in dashboard_and_rule_expressions(REPO):
        answer = query(port, expression)
        if answer.get("status") != "success":
            failures[expression] = answer.get("error")
    assert failures == {}

    rules = json.loads(urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10).read())["data"]["groups"]
    evaluated = [rule for group in rules for rule in group["rules"]]
    assert evaluated and all(rule["health"] == "ok" for rule in evaluated if rule.get("lastEvaluation")), evaluated
