"""Dead-letter records: the reason, the original bytes (or as much of them as fits) and where they came from,
so nothing is lost.

A dead letter must always fit in one Kafka record, whatever the size of the record it reports (the brokers'
default limit is 1 MB, and a rejected record may be that large): the copy of the original is capped at
MAX_ORIGINAL_BYTES, says when it was cut, and carries the original's size and SHA-256 and its topic, partition
and offset, from which an operator fetches the whole. The worst case stays below MAX_DEAD_LETTER_BYTES.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

from .events import Rejection

MAX_ORIGINAL_BYTES = 256 * 1024  # base64: 342 KiB
MAX_TEXT_BYTES = 16 * 1024  # the readable copy; JSON may escape a control character into 6 bytes: <= 96 KiB
MAX_KEY_BYTES = 1024
MAX_DETAIL_CHARS = 1024
MAX_DEAD_LETTER_BYTES = 512 * 1024  # what the caps above add up to, with room for the rest of the record


def dead_letter_value(
    rejection: Rejection, original: bytes | None, *, topic: str, partition: int, offset: int, key: bytes | None = None
) -> bytes:
    original = original or b""
    kept = original[:MAX_ORIGINAL_BYTES]
    record = {
        "reason": rejection.reason,
        "detail": (rejection.detail or "")[:MAX_DETAIL_CHARS],
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key": None if key is None else key[:MAX_KEY_BYTES].decode("utf-8", "replace"),
        "original_size": len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        # the first MAX_ORIGINAL_BYTES; the whole record stays at its source position
        "original_truncated": len(kept) < len(original),
        "original_base64": base64.b64encode(kept).decode(),
        "rejected_ts": int(time.time() * 1000),
    }
    if len(original) <= MAX_TEXT_BYTES:
        try:  # a readable copy when the bytes are short text; the base64 field is the exact original
            record["original_text"] = original.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return json.dumps(record, separators=(",", ":")).encode()


def dead_letter_headers(rejection: Rejection) -> list[tuple[str, bytes]]:
    return [("streamrec-reason", rejection.reason.encode())]
