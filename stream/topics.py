"""Topic names and their creation. Topics are created explicitly (not by auto-creation) so that the
partition count, the replication and the compaction of `recommendations` are what we chose, on any Kafka;
topics that exist already are checked against that choice and the differences reported with what to do."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafka.admin import KafkaAdminClient

log = logging.getLogger(__name__)

INTERACTIONS = "interactions"
ITEMS = "items"
RECOMMENDATIONS = "recommendations"
DEAD_LETTERS = "interactions.dlq"
DEFAULT_MAX_REPLICATION = 3  # without a setting: 3 replicas where the cluster has 3 brokers, fewer on a smaller one


class TopicError(RuntimeError):
    """The topics cannot be created as configured; the message says what to change."""


@dataclass(frozen=True)
class TopicNames:
    interactions: str
    items: str
    recommendations: str
    dead_letters: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> "TopicNames":
        return cls(prefix + INTERACTIONS, prefix + ITEMS, prefix + RECOMMENDATIONS, prefix + DEAD_LETTERS)


def topic_configs(names: TopicNames) -> dict[str, dict[str, str]]:
    # keyed by user: the last list per user is all a consumer needs, so the broker may compact older ones
    compacted = {"cleanup.policy": "compact"}
    # items are keyed by item id: the latest record per item is the item's state
    return {names.interactions: {}, names.items: compacted, names.recommendations: compacted, names.dead_letters: {}}


def replication_for(requested: int | None, brokers: int) -> int:
    if requested is None:
        return max(1, min(DEFAULT_MAX_REPLICATION, brokers))
    if requested > brokers:
        raise TopicError(
            f"STREAMREC_REPLICATION_FACTOR={requested}, but the cluster has {brokers} broker(s): "
            f"set it to at most {brokers}"
        )
    return requested


def with_durability(config: dict[str, str], replication: int) -> dict[str, str]:
    # with 3 or more replicas, acks=all waits for 2: a write survives one broker's loss, and one broker may
    # be down without stopping the producers
    return {**config, "min.insync.replicas": str(replication - 1)} if replication >= 3 else dict(config)


def ensure_topics(
    bootstrap: str, names: TopicNames, partitions: int, replication: int | None = None, **client_options: Any
) -> list[str]:
    """Creates the missing topics; returns the names created. Existing topics are left as they are, and any
    difference from what the worker expects (partitions, cleanup policy) is logged with what to do."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    try:
        factor = replication_for(replication, _broker_count(admin))
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name, partitions, factor, topic_configs=with_durability(config, factor))
            for name, config in topic_configs(names).items()
            if name not in existing
        ]
        for problem in _differences(admin, names, partitions, existing):
            log.warning("%s", problem)
        if not wanted:
            return []
        try:
            admin.create_topics(wanted)
        except TopicAlreadyExistsError:  # another process created them between list and create
            pass
        log.info("created topics %s (%d partitions, replication %d)", [t.name for t in wanted], partitions, factor)
        return [t.name for t in wanted]
    finally:
        admin.close()


def _broker_count(admin: KafkaAdminClient) -> int:
    try:
        return len(admin.describe_cluster()["brokers"]) or 1
    except Exception:  # a broker without DescribeCluster (old or stand-in): assume one
        return 1


def _differences(admin: KafkaAdminClient, names: TopicNames, partitions: int, existing: set[str]) -> list[str]:
    present = [name for name in topic_configs(names) if name in existing]
    if not present:
        return []
    problems: list[str] = []
    for topic in admin.describe_topics(present):
        have = len(topic.get("partitions") or [])
        if topic.get("name") == names.interactions and have and have != partitions:
            problems.append(
                f"topic {names.interactions} has {have} partitions, the worker expects STREAMREC_PARTITIONS={partitions}: "
                f"set STREAMREC_PARTITIONS={have}, or grow the topic (kafka-topics.sh --alter --partitions; users "
                "then move to other partitions, so only before their events arrive), or use a new STREAMREC_TOPIC_PREFIX"
            )
    wanted = {name: config.get("cleanup.policy", "delete") for name, config in topic_configs(names).items()}
    for name, policy in _cleanup_policies(admin, present).items():
        if policy != wanted[name]:
            problems.append(
                f"topic {name} has cleanup.policy={policy}, the worker expects {wanted[name]}: run kafka-configs.sh "
                f"--alter --entity-type topics --entity-name {name} --add-config cleanup.policy={wanted[name]}"
            )
    return problems


def _cleanup_policies(admin: KafkaAdminClient, topics: list[str]) -> dict[str, str]:
    from kafka.admin import ConfigResource, ConfigResourceType

    try:
        responses = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, ["cleanup.policy"]) for t in topics]
        )
    except Exception:  # a broker that does not describe configs (the light stack's): nothing to compare
        return {}
    # kafka-python answers {"topic": {name: {config: {"value": ...}}}}, leaving out settings at their default
    return {
        name: (configs.get("cleanup.policy") or {}).get("value") or "delete"
        for name, configs in (responses.get("topic") or {}).items()
    }
