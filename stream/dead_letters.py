"""Dead-letter records: the reason, the original bytes and where they came from, so nothing is lost."""
from __future__ import annotations

import base64
import json
import time

from .events import Rejection


def dead_letter_value(rejection: Rejection, original: bytes | None, *, topic: str, partition: int, offset: int,
                      key: bytes | None = None) -> bytes:
    original = original or b""
    record = {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key": None if key is None else key.decode("utf-8", "replace"),
        "original_base64": base64.b64encode(original).decode(),
        "rejected_ts": int(time.time() * 1000),
    }
    try:  # a readable copy when the bytes are text; the base64 field is the exact original
        record["original_text"] = original.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return json.dumps(record, separators=(",", ":")).encode()


def dead_letter_headers(rejection: Rejection) -> list[tuple[str, bytes]]:
    return [("streamrec-reason", rejection.reason.encode())]
