"""The graph password never shows: not on a server's or the worker's command line (anyone on the machine can
read those), not in any log line at any level, not in a file left behind in the servers' folders. The session's
servers run with a password of their own (conftest.stack_env); the light stack is checked in test_light_stack."""

from __future__ import annotations

import json
from pathlib import Path

from stream.replay import make_producer, replay
from stream.topics import TopicNames
from streamrec.tools.servers import local_services

import real_events
from conftest import secret_exposures
from test_pipeline import consume_until

N_EVENTS = 200


def test_no_command_line_or_log_line_carries_the_graph_password(
    server_env, server_settings, worker_factory, unique, tmp_path
):
    names = TopicNames.with_prefix(unique)
    worker = worker_factory(
        {"STREAMREC_TOPIC_PREFIX": unique, "STREAMREC_APP_ID": unique + "app", "STREAMREC_LOG_LEVEL": "debug"}
    ).start(until_ready=True)
    data = real_events.first(real_events.spread(N_EVENTS), N_EVENTS)
    users = [unique + u for u in data.users]
    producer = make_producer(server_settings.bootstrap)
    try:
        replay(
            producer,
            names,
            event_ids=[f"{unique}{k}" for k in range(N_EVENTS)],
            users=users,
            items=[unique + i for i in data.items],
            types=data.types,
            ts=data.ts,
        )
        producer.send(names.interactions, key=b"bad", value=b"{not json")
        producer.flush()
    finally:
        producer.close()
    consume_until(
        server_settings.bootstrap,
        names.recommendations,
        lambda rs: {json.loads(r.value)["user_id"] for r in rs} >= set(users),
    )
    servers = local_services(server_settings)
    pids = [service.pid() for service in servers] + [worker.pid]
    assert None not in pids
    exposed = secret_exposures(server_env, pids, [Path(server_env["STREAMREC_HOME"]) / "services", tmp_path])
    worker.stop()
    assert "DEBUG" in worker.log()  # the log this test read was written at the debug level
    assert exposed == []
