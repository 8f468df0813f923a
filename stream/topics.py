"""Topic names and their creation. Topics are created explicitly (not by auto-creation) so that the
partition count and the compaction of `recommendations` are what we chose, on any Kafka."""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

INTERACTIONS = "interactions"
ITEMS = "items"
RECOMMENDATIONS = "recommendations"
DEAD_LETTERS = "interactions.dlq"


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


def ensure_topics(bootstrap: str, names: TopicNames, partitions: int, replication: int = 1, **client_options) -> list[str]:
    """Creates the missing topics; returns the names created. Existing topics are left as they are."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, partitions, replication, topic_configs=config)
                  for name, config in topic_configs(names).items() if name not in existing]
        if not wanted:
            return []
        try:
            admin.create_topics(wanted)
        except TopicAlreadyExistsError:  # another process created them between list and create
            pass
        log.info("created topics %s", [t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        admin.close()
