"""Topic creation on the session's Apache Kafka: partitions, replication, compaction, and the report of an
existing topic that differs from what the worker expects."""

import logging

import pytest

from stream.topics import TopicError, TopicNames, ensure_topics, replication_for, with_durability


def test_replication_defaults_to_three_where_the_cluster_allows_and_never_above_its_brokers():
    assert [replication_for(None, brokers) for brokers in (1, 2, 3, 5)] == [1, 2, 3, 3]
    assert replication_for(2, 3) == 2
    with pytest.raises(TopicError, match="STREAMREC_REPLICATION_FACTOR=3, but the cluster has 1 broker"):
        replication_for(3, 1)
    assert with_durability({"cleanup.policy": "compact"}, 3) == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "2",
    }
    assert with_durability({}, 1) == {}


def test_topics_are_created_once_and_a_differing_existing_topic_is_reported(server_settings, unique, caplog):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    names = TopicNames.with_prefix(unique)
    assert sorted(ensure_topics(server_settings.bootstrap, names, 3)) == sorted(
        [names.interactions, names.items, names.recommendations, names.dead_letters]
    )
    admin = KafkaAdminClient(bootstrap_servers=server_settings.bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics([names.interactions, names.recommendations])}
        assert len(described[names.interactions]["partitions"]) == 3
        assert all(len(p["replica_nodes"]) == 1 for p in described[names.interactions]["partitions"])  # one broker
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, names.recommendations)])
        assert configs["topic"][names.recommendations]["cleanup.policy"]["value"] == "compact"

        caplog.clear()  # the first call's "created topics" (INFO, captured when another test set up logging)
        with caplog.at_level(logging.WARNING, logger="stream.topics"):
            assert ensure_topics(server_settings.bootstrap, names, 3) == []
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]

        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, names.recommendations, {"cleanup.policy": "delete"})]
        )
        with caplog.at_level(logging.WARNING, logger="stream.topics"):
            assert ensure_topics(server_settings.bootstrap, names, 6) == []
        report = caplog.text
        assert f"topic {names.interactions} has 3 partitions, the worker expects STREAMREC_PARTITIONS=6" in report
        assert f"topic {names.recommendations} has cleanup.policy=delete, the worker expects compact" in report
        assert "--add-config cleanup.policy=compact" in report
    finally:
        admin.close()


def test_a_replication_factor_above_the_brokers_stops_the_worker_with_one_line(server_env, unique):
    import subprocess
    import sys

    env = {**server_env, "STREAMREC_REPLICATION_FACTOR": "3", "STREAMREC_TOPIC_PREFIX": unique}
    result = subprocess.run(
        [sys.executable, "-m", "streamrec", "worker"],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "STREAMREC_REPLICATION_FACTOR=3, but the cluster has 1 broker(s): set it to at most 1" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
