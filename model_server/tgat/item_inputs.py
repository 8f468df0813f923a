"""Item records (title, category, brand) -> the item nodes' input features.

A record that changes nothing (a re-delivery, a catalogue re-sent unchanged) costs no encoding: each item
index remembers a hash of the record last applied. The text encoder is loaded on the first item with text.
"""

from __future__ import annotations

from typing import Sequence

import torch

from streamrec.schema import Item

from .graph_state import TemporalGraph
from .text_encoder import TextEncoder, item_text


class ItemInputs:
    def __init__(self, text: bool, device: torch.device):
        self.text, self.device = text, device
        self._encoder: TextEncoder | None = None
        self._applied: dict[int, int] = {}  # item index -> hash of the (title, category, brand) applied
        self.described: set[int] = set()  # item indices whose record has a title, category or brand

    def changed(self, positions: Sequence[int], items: Sequence[Item]) -> tuple[list[int], list[Item]]:
        """The (item index, record) pairs whose record differs from the one last applied; remembered as applied."""
        index, changed = [], []
        for position, item in zip(positions, items):
            key = hash((item.title, item.category, item.brand))
            if self._applied.get(position) != key:
                self._applied[position] = key
                if item.title or item.category or item.brand:  # (the graph store's items_with_text reads these)
                    self.described.add(position)
                else:
                    self.described.discard(position)
                index.append(position)
                changed.append(item)
        return index, changed

    def apply(self, graph: TemporalGraph, index: list[int], items: Sequence[Item]) -> None:
        """Writes the records' text vectors, categories and brands into the graph's item features."""
        vectors = None
        if self.text:
            texts = [item_text(i.title, i.category, i.brand) for i in items]
            if any(texts):
                if self._encoder is None:
                    self._encoder = TextEncoder(self.device)
                vectors = self._encoder.encode(texts)
        graph.side.set(index, vectors, [i.category for i in items], [i.brand for i in items])
