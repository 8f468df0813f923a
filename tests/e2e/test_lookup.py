"""GET /recommendations/{user_id} and `streamrec recommend`: one user's list computed now by a running worker,
in the topic record's format; unknown users get 404 and bad ids or k 400, each with a JSON reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from stream.replay import make_producer, replay
from stream.topics import TopicNames

import real_events
from conftest import get_json as get
from test_pipeline import consume_until

N_EVENTS = 300


def test_a_users_list_on_request_from_the_http_port_and_the_cli(server_settings, worker_factory, unique):
    names = TopicNames.with_prefix(unique)
    worker = worker_factory({"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app"}).start()
    data = real_events.first(real_events.spread(N_EVENTS), N_EVENTS)
    users = [unique + u for u in data.users]
    event_ids = [f"{unique}{k}" for k in range(N_EVENTS)]
    producer = make_producer(server_settings.bootstrap)
    try:
        replay(
            producer,
            names,
            event_ids=event_ids,
            users=users,
            items=[unique + i for i in data.items],
            types=data.types,
            ts=data.ts,
        )
    finally:
        producer.close()
    records = consume_until(
        server_settings.bootstrap,
        names.recommendations,
        lambda rs: any(json.loads(r.value)["last_event_id"] == event_ids[-1] for r in rs),
    )
    last = next(json.loads(r.value) for r in reversed(records) if json.loads(r.value)["last_event_id"] == event_ids[-1])
    port = worker.metrics_port
    assert not (Path.cwd() / f"{unique}app-data").exists()  # Faust's folder is under STREAMREC_HOME, not here
    assert (server_settings.home / "faust" / f"{unique}app-data").is_dir()

    # the stream's last user: nothing has happened since its list was published, so the list now is the same
    code, now = get(port, f"/recommendations/{quote(users[-1], safe='')}")
    assert code == 200 and set(now) == set(last)
    assert now["items"] == last["items"] and now["model_version"] == last["model_version"]
    assert now["last_event_id"] is None and now["event_ts"] is None and now["published_ts"] >= last["published_ts"]
    assert [i["item_id"] for i in get(port, f"/recommendations/{quote(users[-1], safe='')}?k=3")[1]["items"]] == [
        i["item_id"] for i in last["items"][:3]
    ]

    assert get(port, f"/recommendations/{unique}nobody") == (
        404,
        {"error": "unknown user: no event of this user has reached this worker", "user_id": unique + "nobody"},
    )
    for bad in (
        "%20u1",
        "u%E2%80%8B1",
        "%FF",
        "",
        f"{quote(users[0])}?k=0",
        f"{quote(users[0])}?k=abc",
        f"{quote(users[0])}?k=1001",
    ):
        code, body = get(port, f"/recommendations/{bad}")
        assert code == 400 and body["error"], (bad, code, body)

    env = {**os.environ, **worker.env}
    cli = subprocess.run(
        [sys.executable, "-m", "streamrec", "recommend", users[-1], "--top-k", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert [i["item_id"] for i in json.loads(cli.stdout)["items"]] == [i["item_id"] for i in last["items"][:5]]
    missing = subprocess.run(
        [sys.executable, "-m", "streamrec", "recommend", unique + "nobody"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "unknown user" in missing.stderr and "Traceback" not in missing.stderr
