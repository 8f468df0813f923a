"""The group's lag read from the session's Apache Kafka: end offsets minus the group's commits, for every partition,
whether or not anything in the group holds it."""

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from stream.group_lag import GroupLag
from stream.topics import TopicNames, ensure_topics


def test_the_lag_counts_every_partition_from_the_broker(server_settings, unique):
    names = TopicNames.with_prefix(unique)
    ensure_topics(server_settings.bootstrap, names, 3)
    group = f"{unique}-group"
    lag = GroupLag(server_settings.bootstrap, group, names.interactions)
    try:
        assert lag.read() == {0: 0, 1: 0, 2: 0}
        producer = KafkaProducer(bootstrap_servers=server_settings.bootstrap)
        for partition, count in ((0, 10), (2, 4)):
            for k in range(count):
                producer.send(names.interactions, f"event {k}".encode(), partition=partition)
        producer.flush()
        producer.close()
        assert lag.read() == {0: 10, 1: 0, 2: 4}  # nothing committed: every record counts

        committer = KafkaConsumer(bootstrap_servers=server_settings.bootstrap, group_id=group, enable_auto_commit=False)
        committer.commit({TopicPartition(names.interactions, 0): OffsetAndMetadata(7, "", -1)})
        committer.close()
        assert lag.read() == {0: 3, 1: 0, 2: 4}
    finally:
        lag.close()
