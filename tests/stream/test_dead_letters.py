"""A dead letter always fits in one Kafka record, whatever the size of the record it reports (1 byte to the
brokers' 1 MB default), keeps the exact original when it fits, and otherwise says it was cut and how to find
the whole."""

import base64
import hashlib
import json
import os

import pytest

from stream.dead_letters import MAX_DEAD_LETTER_BYTES, MAX_ORIGINAL_BYTES, dead_letter_value
from stream.events import Rejection

BROKER_LIMIT = 1_048_576  # Kafka's default message.max.bytes is 1,048,588 (the record batch's overhead included)


@pytest.mark.parametrize(
    "size",
    [1, 1_000, 16 * 1024, 16 * 1024 + 1, MAX_ORIGINAL_BYTES, MAX_ORIGINAL_BYTES + 1, 430_000, 1_000_000, BROKER_LIMIT],
)
@pytest.mark.parametrize("content", ["random", "control"])  # control characters: JSON's worst escaping
def test_a_dead_letter_fits_and_describes_an_original_of_any_size(size, content):
    original = os.urandom(size) if content == "random" else b"\x01" * size
    value = dead_letter_value(
        Rejection("not_json", "x" * 5000), original, topic="interactions", partition=2, offset=7, key=b"k" * 5000
    )
    assert len(value) <= MAX_DEAD_LETTER_BYTES < BROKER_LIMIT
    record = json.loads(value)
    kept = base64.b64decode(record["original_base64"])
    assert record["original_size"] == size and record["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert record["source"] == {"topic": "interactions", "partition": 2, "offset": 7}
    assert record["original_truncated"] == (size > MAX_ORIGINAL_BYTES)
    assert kept == original[:MAX_ORIGINAL_BYTES]
    assert len(record["detail"]) <= 1024 and len(record["key"]) <= 1024


def test_short_text_gets_a_readable_copy_and_long_or_binary_data_does_not():
    short = json.loads(dead_letter_value(Rejection("not_json", ""), b"{nope", topic="t", partition=0, offset=0))
    assert short["original_text"] == "{nope" and short["original_truncated"] is False
    binary = json.loads(dead_letter_value(Rejection("not_json", ""), b"\xff", topic="t", partition=0, offset=0))
    assert "original_text" not in binary
    long = json.loads(dead_letter_value(Rejection("not_json", ""), b"a" * 20_000, topic="t", partition=0, offset=0))
    assert "original_text" not in long and base64.b64decode(long["original_base64"]) == b"a" * 20_000
