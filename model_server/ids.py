"""String id <-> dense index maps that grow as new ids appear (no fixed num_nodes)."""

from __future__ import annotations

from typing import Iterable


class IdMap:
    def __init__(self, ids: Iterable[str] = ()):
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self.add(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def add(self, ids: Iterable[str]) -> list[int]:
        """Indices of `ids`, assigning new ones in order of first appearance."""
        out = []
        for key in ids:
            index = self._index.get(key)
            if index is None:
                index = self._index[key] = len(self._ids)
                self._ids.append(key)
            out.append(index)
        return out

    def get(self, key: str, default: int = -1) -> int:
        return self._index.get(key, default)

    def lookup(self, ids: Iterable[str]) -> list[int]:
        return [self._index.get(key, -1) for key in ids]

    def id_of(self, index: int) -> str:
        return self._ids[index]

    @property
    def ids(self) -> list[str]:
        return self._ids
