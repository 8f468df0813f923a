"""Keep every user's newest recommendation list, as a service that shows them would (kafka-python only).

    python examples/keep_latest_lists.py [--seconds 30] [--out lists.json]

`recommendations` is compacted and keyed by user, so reading it from the beginning rebuilds each user's current
list, and reading on keeps it fresh. Within a partition the newest record of a user comes last; the published
time decides across a worker restart. Reads for --seconds, then writes {user: list record} as JSON.
"""

import argparse
import json
import os
import time

from kafka import KafkaConsumer

BOOTSTRAP = os.environ.get("STREAMREC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PREFIX = os.environ.get("STREAMREC_TOPIC_PREFIX", "")


def keep_latest(seconds: float) -> dict[str, dict]:
    # no consumer group: every reader of the lists sees all users (a group would split them between readers)
    consumer = KafkaConsumer(
        PREFIX + "recommendations",
        bootstrap_servers=BOOTSTRAP.split(","),
        group_id=None,
        auto_offset_reset="earliest",
        value_deserializer=json.loads,
    )
    latest: dict[str, dict] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                lists = record.value
                kept = latest.get(lists["user_id"])
                if kept is None or lists["published_ts"] >= kept["published_ts"]:
                    latest[lists["user_id"]] = lists
    consumer.close()
    return latest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to read (default: %(default)s)")
    parser.add_argument("--out", default="lists.json", help="where to write the lists (default: %(default)s)")
    args = parser.parse_args()
    lists = keep_latest(args.seconds)
    with open(args.out, "w") as file:
        json.dump(lists, file)
    for user, record in list(lists.items())[:5]:
        print(user, "->", ", ".join(item["item_id"] for item in record["items"][:5]))
    print(f"{len(lists)} users' lists written to {args.out}")
