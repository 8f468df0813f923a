"""Event and record schemas of the topics, and the validation that decides what goes to the dead-letter topic.

`interactions` (key = user_id):  {"event_id", "user_id", "item_id", "type", "ts" (epoch ms), "props"?}
`items`        (key = item_id):  {"item_id", "title"?, "category"?, "brand"?, "price"?}
`recommendations` (key = user_id): see `recommendation_record`.
"""

from __future__ import annotations

import math
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson  # compact UTF-8 JSON (like json.dumps with separators=(',', ':')), several times faster

# the shared schema (streamrec/schema.py), re-exported: the parsers below make these from the topics' records
from streamrec.schema import EVENT_TYPES as EVENT_TYPES, Interaction as Interaction, Item as Item

MAX_ID_LENGTH = 256
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Rejection:
    """Why a record cannot be processed; `reason` is a short fixed label (a metric label), `detail` is free text."""

    reason: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


REJECTION_REASONS = (
    "not_json",
    "not_object",
    "missing_field",
    "bad_id",
    "unknown_type",
    "bad_ts",
    "ts_out_of_range",
    "bad_field",
    "graph_rejected",  # valid, but the graph server refuses it for good (stream/retries.py)
)


def id_problem(text: str) -> str | None:
    """What makes `text` unusable as an id, or None. Ids are opaque strings that must mean one thing to every
    producer, consumer and operator: characters that render as nothing or reorder the text (format characters
    such as U+200B, U+202E, U+FEFF), controls, line separators, surrogates and non-characters (U+FFFE, U+FFFF,
    U+FDD0..U+FDEF) are refused rather than stripped, which would silently merge two producers' ids; so is
    whitespace at either end (" u1" and "u1" would be two users) and a whitespace-only id."""
    if not text.strip():
        return "is blank (whitespace only)"
    if text != text.strip():
        return "starts or ends with whitespace"
    for ch in text:
        code = ord(ch)
        if unicodedata.category(ch) in _UNUSABLE_CATEGORIES or (code & 0xFFFE) == 0xFFFE or 0xFDD0 <= code <= 0xFDEF:
            return f"contains the invisible or reserved character U+{code:04X} ({unicodedata.category(ch)})"
    return None


_UNUSABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, format, surrogates, line/para seps


def normal_id(value: str) -> tuple[str, str | None]:
    """The id as the system stores it (NFC: a composed and a decomposed "é" are the same id), and what makes it
    unusable, if anything (the same rule for records and for lookups)."""
    if value.isascii() and value.isprintable() and 0 < len(value) <= MAX_ID_LENGTH:
        # the usual id: printable ASCII is already NFC and holds no invisible or reserved character; only the
        # whitespace rule is left (this path is per id on the hot path: the general one walks every character)
        return value, id_problem(value) if value[0] == " " or value[-1] == " " else None
    text = unicodedata.normalize("NFC", value)
    if len(text) > MAX_ID_LENGTH:
        return text, f"is {len(text)} characters long; at most {MAX_ID_LENGTH} are allowed"
    return text, id_problem(text)


def _check_id(record: dict[str, Any], name: str) -> str | Rejection:
    """The id in `record[name]`, normalised; or why it is unusable."""
    value = record.get(name)
    if value is None or value == "":
        return Rejection("missing_field", f"{name} is missing or empty")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return Rejection("bad_id", f"{name} must be a string (or an integer), got {type(value).__name__}")
    text, problem = normal_id(str(value))
    if problem:
        return Rejection("bad_id", f"{name} {problem}")
    return text


def _decode_object(raw: bytes | str | None) -> dict[str, Any] | Rejection:
    if raw is None:
        return Rejection("not_json", "the record has no value")
    try:
        record = orjson.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        return Rejection("not_json", f"value is not JSON: {exc}")
    if not isinstance(record, dict):
        return Rejection("not_object", f"value must be a JSON object, got {type(record).__name__}")
    return record


def parse_interaction(
    raw: bytes | str | None,
    *,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    kafka_ts: float = 0.0,
    now_ms: int | None = None,
) -> Interaction | Rejection:
    record = _decode_object(raw)
    if isinstance(record, Rejection):
        return record
    ids: dict[str, str] = {}
    for name in ("event_id", "user_id", "item_id"):
        checked = _check_id(record, name)
        if isinstance(checked, Rejection):
            return checked
        ids[name] = checked
    event_type = record.get("type")
    if event_type not in EVENT_TYPES:
        return Rejection("unknown_type", f"type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    ts = record.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return Rejection("bad_ts", f"ts must be a number of epoch milliseconds, got {ts!r}")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if ts < MIN_TS_MS:
        return Rejection("ts_out_of_range", f"ts {ts} is before 2000-01-01 (epoch milliseconds expected)")
    if ts > now_ms + MAX_FUTURE_MS:
        return Rejection("ts_out_of_range", f"ts {ts} is more than a day in the future")
    props = record.get("props")
    if props is not None and not isinstance(props, dict):
        return Rejection("bad_field", f"props must be a JSON object, got {type(props).__name__}")
    return Interaction(
        event_id=ids["event_id"],
        user_id=ids["user_id"],
        item_id=ids["item_id"],
        type=event_type,
        ts=int(ts),
        props=props,
        topic=topic,
        partition=partition,
        offset=offset,
        kafka_ts=kafka_ts,
    )


def parse_item(raw: bytes | str | None) -> Item | Rejection:
    record = _decode_object(raw)
    if isinstance(record, Rejection):
        return record
    item_id = _check_id(record, "item_id")
    if isinstance(item_id, Rejection):
        return item_id
    texts: dict[str, str | None] = {}
    for name in ("title", "category", "brand"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            return Rejection("bad_field", f"{name} must be a string, got {type(value).__name__}")
        texts[name] = value or None
    price = record.get("price")
    if price is not None and (
        isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price)
    ):
        return Rejection("bad_field", f"price must be a number, got {price!r}")
    return Item(item_id=item_id, price=None if price is None else float(price), **texts)


def interaction_value(
    event_id: str, user_id: str, item_id: str, event_type: str, ts_ms: int, props: dict[str, Any] | None = None
) -> bytes:
    record: dict[str, Any] = {
        "event_id": event_id,
        "user_id": user_id,
        "item_id": item_id,
        "type": event_type,
        "ts": ts_ms,
    }
    if props:
        record["props"] = props
    return orjson.dumps(record)


def item_value(item: Item) -> bytes:
    record = {k: v for k, v in item.__dict__.items() if v is not None}
    return orjson.dumps(record)


def recommendation_record(
    user_id: str,
    items: list[dict[str, Any]],
    *,
    model: str,
    model_version: str,
    model_version_name: str | None,
    last_event: Interaction | None,
    published_ts: int,
) -> bytes:
    """One user's list. `items` are {"item_id", "score", ...}; the newest list for a key replaces older ones.
    `model_version` is the model's content hash, `model_version_name` the promoted version (the checkpoint's
    folder under STREAMREC_MODEL_DIR) it came from: null for the baseline.
    A list computed on request (GET /recommendations/{user}) answers no event: its last_event_id and event_ts
    are null."""
    record = {
        "user_id": user_id,
        "items": items,
        "model": model,
        "model_version": model_version,
        "model_version_name": model_version_name,
        "last_event_id": last_event.event_id if last_event else None,
        "event_ts": last_event.ts if last_event else None,
        "published_ts": published_ts,
    }
    return orjson.dumps(record)
