"""The consumer group's lag as the broker sees it: for every partition of the input topic, its end offset minus
the offset the group committed there (its first offset where the group has committed nothing).

Each worker exports the lag of the partitions it owns (streamrec_consumer_lag_events), which says nothing about
a partition whose owner is stuck, gone silent or never exports: its gauge is missing, not high. Read from the
broker, the group's lag counts every partition whoever holds it, so every worker exports the same figure and
the alert reads its maximum (deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafka import KafkaConsumer

log = logging.getLogger(__name__)


class GroupLag:
    """Reads the lag with one consumer that never joins the group (it only asks the group's coordinator for the
    committed offsets), created on first use and kept: called from a worker thread, it blocks."""

    def __init__(self, bootstrap: str, group_id: str, topic: str, **client_options: Any):
        self.bootstrap, self.group_id, self.topic, self.client_options = bootstrap, group_id, topic, client_options
        self._consumer: KafkaConsumer | None = None

    def read(self) -> dict[int, int]:
        """Partition -> records the group has not committed past."""
        from kafka import TopicPartition

        consumer = self._client()
        partitions = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
        if not partitions:
            return {}
        end, earliest = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)
        lag: dict[int, int] = {}
        for tp in partitions:
            committed = consumer.committed(tp)
            lag[tp.partition] = max(end[tp] - (earliest[tp] if committed is None else committed), 0)
        return lag

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            from kafka import KafkaConsumer

            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group_id,
                enable_auto_commit=False,
                **self.client_options,
            )
        return self._consumer
