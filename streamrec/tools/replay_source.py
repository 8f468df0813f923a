"""Adapts a loaded Dataset to the replay producer's columns (the stream layer knows no data set files)."""

from __future__ import annotations

import time

from stream.events import MIN_TS_MS, Item

from .datasets import Dataset


def select(data: Dataset, limit: int | None = None, now_ms: int | None = None) -> dict:
    """The first `limit` events as producer columns. Data sets recorded before 2000 (ML-100K is from 1997-98) are
    shifted as a whole so that their last event is `now`: gaps between events are kept, and the events pass the
    contract's time checks. Other data sets keep their recorded times."""
    stop = len(data) if limit is None else min(limit, len(data))
    ts = data.ts[:stop]
    if ts and ts[0] < MIN_TS_MS:
        shift = (int(time.time() * 1000) if now_ms is None else now_ms) - ts[-1]
        ts = [t + shift for t in ts]
    return {
        "event_ids": data.event_ids()[:stop],
        "users": data.users[:stop],
        "items": data.items[:stop],
        "types": data.types[:stop],
        "ts": ts,
    }


def item_records(data: Dataset, wanted: set[str]) -> list[Item]:
    return [item for item_id, item in data.item_info.items() if item_id in wanted]
