"""Adapts a loaded Dataset to the replay producer's columns (the stream layer knows no data set files)."""
from __future__ import annotations

from stream.events import Item

from .datasets import Dataset


def select(data: Dataset, limit: int | None = None) -> dict:
    stop = len(data) if limit is None else min(limit, len(data))
    return {"event_ids": data.event_ids()[:stop], "users": data.users[:stop], "items": data.items[:stop],
            "types": data.types[:stop], "ts": data.ts[:stop]}


def item_records(data: Dataset, wanted: set[str]) -> list[Item]:
    return [Item(info.item_id, info.title, info.category, info.brand, info.price)
            for item_id, info in data.item_info.items() if item_id in wanted]
