"""One attention layer over the K buffer slots of each target, for serving: the same function as the model's
PyG TransformerConv (the graph transformer operator of Shi et al., "Masked label prediction", IJCAI 2021, with
TGN's edge features added to keys and values), with the same weights, computed on dense [targets, K] tensors.

Why a second form of the same layer: the live model host re-embeds a few nodes per micro-batch, where the cost is
the number of torch calls, not their arithmetic. The message-passing form lists each non-empty slot as an edge,
finds each layer's sources, and goes through PyG's propagate, scatter softmax and module hooks; on the fixed-width
neighbour buffer a masked softmax over the K slots is the same softmax, in about half the calls (measured in
docs/benchmarks.md). Training keeps the PyG form (autograd, dropout); tests hold the two equal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch_geometric.nn import TransformerConv


def attend_slots(
    conv: TransformerConv,
    h_dst: torch.Tensor,
    h_src: torch.Tensor,
    slot_src: torch.Tensor,
    filled: torch.Tensor,
    edge_attr: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out [n, heads * channels], attention [n, K, heads]) of `conv` in eval mode for n targets.

    h_dst: [n, in] the targets' inputs; h_src: [S, in] the inputs of every node a slot names; slot_src: [n, K]
    the row of h_src each slot reads; filled: [n, K] bool; edge_attr: [E, edge_dim] for the E filled slots in
    row-major order (as `x[filled]` lists them). A target with no filled slot gets its skip term only and zero
    attention, as in PyG (an empty sum)."""
    if conv.beta or not conv.concat or not conv.root_weight or conv.lin_edge is None:
        raise ValueError("attend_slots computes TransformerConv(concat=True, root_weight=True, beta=False, edge_dim)")
    heads, channels = conv.heads, conv.out_channels
    n, k = filled.shape
    row, slot = filled.nonzero(as_tuple=True)
    src = slot_src[row, slot]
    # per filled slot only (a buffer is often mostly empty: 31 % filled on REES46), keys and values once per
    # source node and gathered (a node can fill many targets' slots)
    edge = F.linear(edge_attr, conv.lin_edge.weight).view(-1, heads, channels)
    key = F.linear(h_src, conv.lin_key.weight, conv.lin_key.bias).view(-1, heads, channels)[src] + edge
    value = F.linear(h_src, conv.lin_value.weight, conv.lin_value.bias).view(-1, heads, channels)[src] + edge
    query = F.linear(h_dst, conv.lin_query.weight, conv.lin_query.bias).view(n, heads, channels)
    filled_scores = (query[row] * key).sum(dim=-1) / math.sqrt(channels)
    scores = filled_scores.new_full((n, k, heads), float("-inf"))  # (of the computed dtype: bf16 under autocast)
    scores[row, slot] = filled_scores
    # the softmax over each target's slots is PyG's softmax over its incoming edges; a target with every slot
    # empty softmaxes all -inf (NaN), and its weights are set to 0 with the empty slots'
    attention = torch.softmax(scores, dim=1).masked_fill(~filled[:, :, None], 0.0)
    weighted = attention[row, slot, :, None] * value
    out = weighted.new_zeros(n, heads, channels).index_add_(0, row, weighted)
    return out.view(n, heads * channels) + F.linear(h_dst, conv.lin_skip.weight, conv.lin_skip.bias), attention
