"""Send your own items and events to streamrec: the code a shop's backend needs (kafka-python and the standard
library only, so it can be copied into any service).

    python examples/produce_events.py events.csv

events.csv has a header and the columns user_id,item_id,type,ts[,item_text] (the format `streamrec produce`
and `streamrec train --events-csv` read): type is click, view, add_to_cart or purchase, ts is epoch
milliseconds. Each item is sent once, before its first event, so its text is known when that event is ranked.
The broker and the topic prefix are the worker's own variables (STREAMREC_KAFKA_BOOTSTRAP, STREAMREC_TOPIC_PREFIX).
"""

import csv
import json
import os
import sys

from kafka import KafkaProducer

BOOTSTRAP = os.environ.get("STREAMREC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PREFIX = os.environ.get("STREAMREC_TOPIC_PREFIX", "")


def main(events_csv: str) -> None:
    # acks="all": a send counts only once every in-sync replica has it; keys route a user's events to one partition
    producer = KafkaProducer(
        bootstrap_servers=BOOTSTRAP.split(","),
        acks="all",
        key_serializer=str.encode,
        value_serializer=lambda record: json.dumps(record).encode(),
    )
    items_sent, events_sent = set(), 0
    with open(events_csv, newline="") as file:
        for row in csv.DictReader(file):
            if row["item_id"] not in items_sent:
                item = {"item_id": row["item_id"]}
                if row.get("item_text"):
                    item["title"] = row["item_text"]
                producer.send(PREFIX + "items", key=row["item_id"], value=item)
                items_sent.add(row["item_id"])
            # a stable event id: sending the same file twice is recognisable downstream
            event_id = f"{row['user_id']}|{row['item_id']}|{row['type']}|{row['ts']}"
            event = {
                "event_id": event_id,
                "user_id": row["user_id"],
                "item_id": row["item_id"],
                "type": row["type"],
                "ts": int(row["ts"]),
            }
            producer.send(PREFIX + "interactions", key=row["user_id"], value=event)
            events_sent += 1
    producer.flush()  # raises if a record could not be written
    producer.close()
    print(f"sent {len(items_sent)} items and {events_sent} events to {BOOTSTRAP}")


if __name__ == "__main__":
    main(sys.argv[1])
