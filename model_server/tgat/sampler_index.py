"""Who samples whom: for each node, the nodes whose buffer row holds it, found without scanning the buffer.

A refresh re-embeds the nodes that sample a batch's endpoints (refresh.py). Scanning every row for them cost
O(nodes x K) per batch (0.5 ms at REES46's 10k nodes, and linear in the graph). Here each distinct
(neighbour, row) pair of the buffer is one sorted int64 key neighbour << 32 | row, so a node's samplers are a
binary-searched range. Keys are kept as a log-structured pair of arrays: `main`, sorted, with a `live` mask
(a removed key is only masked), and `recent`, a small sorted array of keys added since; `recent` is merged into
`main` (masked keys dropped) once it holds sqrt(_RECENT_SCALE x len(main)) keys (pairs.KeyLog's rule), so an
update neither rewrites the whole array every batch nor copies a `recent` that is a fixed share of it (an
eighth of `main`, the earlier rule, left each batch's copy of `recent` and its removals O(state); issue 31).
"""

from __future__ import annotations

import torch

import math

from ..pairs import LOW, SHIFT, merge_sorted, new_keys, ranges_of

# merge `recent` into `main` once it holds sqrt(_RECENT_SCALE x len(main)) keys (and at least _MIN_RECENT)
_RECENT_SCALE = 4096
_MIN_RECENT = 4096


class SamplerIndex:
    def __init__(self, device: torch.device):
        self.main = torch.zeros(0, dtype=torch.long, device=device)
        self.live = torch.zeros(0, dtype=torch.bool, device=device)
        self.recent = torch.zeros(0, dtype=torch.long, device=device)

    def rebuild(self, nbr: torch.Tensor) -> None:
        """From every row of the buffer (`nbr`: [nodes, K], row r is node r)."""
        self.main = _pairs(torch.arange(nbr.shape[0], device=nbr.device), nbr)
        self.live = torch.ones_like(self.main, dtype=torch.bool)
        self.recent = self.main[:0]

    def update(self, rows: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> None:
        """Rows `rows` of the buffer changed from `old` to `new` ([len(rows), K] neighbours each)."""
        before, after = _pairs(rows, old), _pairs(rows, new)
        self._remove(new_keys(after, before))
        self._add(new_keys(before, after))

    def samplers_of(self, nodes: torch.Tensor) -> torch.Tensor:
        """Sorted unique nodes whose row holds any of `nodes`."""
        _, at = ranges_of(self.main, nodes)
        at = at[self.live[at]]
        _, recent_at = ranges_of(self.recent, nodes)
        return torch.unique(torch.cat([self.main[at], self.recent[recent_at]]) & LOW)

    def _remove(self, keys: torch.Tensor) -> None:
        if keys.numel() == 0:
            return
        in_main, at = _find(self.main, keys)
        self.live[at[in_main]] = False
        if self.recent.numel():
            self.recent = self.recent[~torch.isin(self.recent, keys[~in_main])]

    def _add(self, keys: torch.Tensor) -> None:
        if keys.numel() == 0:
            return
        in_main, at = _find(self.main, keys)
        self.live[at[in_main]] = True  # added back after a removal: unmasked
        self.recent = merge_sorted(self.recent, keys[~in_main])
        if self.recent.numel() >= max(_MIN_RECENT, math.isqrt(_RECENT_SCALE * self.main.numel())):
            self.main = merge_sorted(self.main[self.live], self.recent)
            self.live = torch.ones_like(self.main, dtype=torch.bool)
            self.recent = self.main[:0]


def _pairs(rows: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    """Sorted unique keys neighbour << 32 | row of the non-empty slots."""
    valid = nbr >= 0  # an empty slot holds -1 (neighbours.EMPTY; not imported: neighbours.py imports this module)
    return torch.unique((nbr[valid] << SHIFT) | rows[:, None].expand_as(nbr)[valid])


def _find(keys: torch.Tensor, wanted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(found, position) of each of `wanted` in sorted `keys`."""
    if keys.numel() == 0:
        return torch.zeros_like(wanted, dtype=torch.bool), torch.zeros_like(wanted)
    at = torch.searchsorted(keys, wanted).clamp(max=keys.numel() - 1)
    return keys[at] == wanted, at
