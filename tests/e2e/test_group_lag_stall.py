"""Lag is visible whoever holds the partition (issue 27): one worker of two stalls (SIGSTOP) while holding its
partitions; the other worker's own lag gauges read 0 throughout, but the group's lag it reads from the broker
shows the stalled partitions' records, so the lag alert's expression (max over workers) sees them; once the
stalled worker runs again the group's lag drains back to 0."""

import signal

from conftest import wait_for
from e2e.test_pipeline import scrape
from stream.replay import make_producer, replay
from stream.topics import TopicNames

N_EVENTS = 400


def test_a_stalled_worker_shows_in_the_group_lag_of_the_healthy_one(server_settings, worker_factory, unique):
    env = {
        "STREAMREC_TOPIC_PREFIX": unique,
        "STREAMREC_APP_ID": unique + "app",
        "STREAMREC_PARTITIONS": "4",
        "STREAMREC_SESSION_TIMEOUT_S": "60",  # the stalled worker keeps its partitions through the test
    }
    healthy = worker_factory(env).start(until_ready=True)
    stalled = worker_factory(env).start(until_ready=True)
    assert wait_for(lambda: scrape(healthy.metrics_port, "streamrec_group_lag_events") == 0, 30)
    stalled.process.send_signal(signal.SIGSTOP)
    try:
        names, producer = TopicNames.with_prefix(unique), make_producer(server_settings.bootstrap)
        replay(
            producer,
            names,
            event_ids=[f"{unique}{k}" for k in range(N_EVENTS)],
            users=[f"{unique}u{k % 97}" for k in range(N_EVENTS)],  # keyed by user: every partition gets some
            items=[f"{unique}i{k % 31}" for k in range(N_EVENTS)],
            types=["click"] * N_EVENTS,
            ts=[1_700_000_000_000 + k for k in range(N_EVENTS)],
        )
        producer.flush()
        producer.close()
        # the healthy worker drains its own partitions; the stalled one's records stay behind
        assert wait_for(lambda: scrape(healthy.metrics_port, "streamrec_consumer_lag_events") == 0, 60)
        assert wait_for(lambda: scrape(healthy.metrics_port, "streamrec_group_lag_events") > 0, 30)
        behind = scrape(healthy.metrics_port, "streamrec_group_lag_events")
        assert 0 < behind < N_EVENTS  # the stalled worker's share: its partitions, no more
        assert scrape(healthy.metrics_port, "streamrec_consumer_lag_events") == 0  # what the old alert read
    finally:
        stalled.process.send_signal(signal.SIGCONT)
    assert wait_for(lambda: scrape(healthy.metrics_port, "streamrec_group_lag_events") == 0, 90)
