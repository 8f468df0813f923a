"""Bounded L-hop sampling from the recent-neighbour buffer (a small stand-in for PyG's NeighborLoader).

The embedding of a node at layer l reads the layer-(l-1) embeddings of its K most recent neighbours
(TGAT, Xu et al., ICLR 2020, Sec. 3: recursive temporal neighbourhood aggregation). Each block lists, for its
target nodes, the edges from their buffer rows with edge type and age Δt = ref(target) - last_ts, where
ref(target) is the target's own newest edge: a function of graph state, never of wall-clock time. Edges are
listed row-major (target, slot), so a node's computation is identical whether it is refreshed alone or as
part of a full recompute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .neighbours import EMPTY, RecentNeighbours


@dataclass
class Block:
    src_nodes: torch.Tensor  # global ids whose previous-layer embeddings this layer reads (sorted)
    dst_nodes: torch.Tensor  # global ids this layer computes (sorted)
    dst_in_src: torch.Tensor  # position of each dst node in src_nodes (for the root/skip term)
    edge_index: torch.Tensor  # [2, E]: (position in src_nodes, position in dst_nodes)
    edge_type: torch.Tensor  # [E]
    edge_dt: torch.Tensor  # [E] float seconds, >= 0
    edge_slot: torch.Tensor  # [E] buffer slot of the edge in its target's row


def sample_blocks(buffer: RecentNeighbours, targets: torch.Tensor, num_layers: int) -> list[Block]:
    """Blocks from the input layer up to `targets` (blocks[-1].dst_nodes == unique(targets))."""
    dst = torch.unique(targets)
    blocks = []
    for _ in range(num_layers):
        nbr, etype, ts = buffer.rows(dst)
        valid = nbr != EMPTY
        src = torch.unique(torch.cat([dst, nbr[valid]]))
        dst_pos = torch.arange(dst.numel(), device=dst.device)[:, None].expand_as(nbr)[valid]
        slot = torch.arange(buffer.k, device=dst.device)[None, :].expand_as(nbr)[valid]
        dt = (ts[:, :1] - ts)[valid].to(torch.float32) / 1000.0
        blocks.append(
            Block(
                src,
                dst,
                torch.searchsorted(src, dst),
                torch.stack([torch.searchsorted(src, nbr[valid]), dst_pos]),
                etype[valid],
                dt,
                slot,
            )
        )
        dst = src
    return blocks[::-1]
