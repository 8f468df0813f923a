"""The serving form of the attention layer equals PyG's TransformerConv, weights and all (pure logic)."""

import pytest
import torch
from torch_geometric.nn import TransformerConv

from model_server.tgat.slot_attention import attend_slots


def _case(seed: int, targets: int = 7, k: int = 5, sources: int = 11, dim: int = 8, edge_dim: int = 6):
    generator = torch.Generator().manual_seed(seed)
    h_src = torch.randn(sources, dim, generator=generator)
    h_dst = torch.randn(targets, dim, generator=generator)
    slot_src = torch.randint(0, sources, (targets, k), generator=generator)
    filled = torch.rand(targets, k, generator=generator) < 0.6
    filled[0] = False  # a target with no neighbour: its skip term only
    filled[1] = True  # one with every slot filled
    edge_attr = torch.randn(targets, k, edge_dim, generator=generator)
    return h_dst, h_src, slot_src, filled, edge_attr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_dense_layer_equals_the_message_passing_layer(seed):
    torch.manual_seed(seed)
    conv = TransformerConv(8, 4, heads=2, dropout=0.5, edge_dim=6).eval()  # eval: dropout off in both
    h_dst, h_src, slot_src, filled, edge_attr = _case(seed)
    targets = h_dst.shape[0]
    row, slot = filled.nonzero(as_tuple=True)
    # PyG's form: sources then targets in one feature table, one edge per filled slot (source -> target)
    x_src = torch.cat([h_src, h_dst])
    edge_index = torch.stack([slot_src[row, slot], row])
    with torch.no_grad():
        expected, (_, alpha) = conv((x_src, h_dst), edge_index, edge_attr[row, slot], return_attention_weights=True)
        out, attention = attend_slots(conv, h_dst, h_src, slot_src, filled, edge_attr[filled])
    assert out.shape == (targets, 8)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attention[row, slot], alpha, rtol=1e-5, atol=1e-6)
    assert torch.all(attention[~filled] == 0)
    torch.testing.assert_close(out[0], conv.lin_skip(h_dst[0]))  # no neighbour: the skip term alone


def test_configurations_it_does_not_compute_are_refused():
    conv = TransformerConv(8, 4, heads=2, beta=True, edge_dim=6).eval()
    with pytest.raises(ValueError, match="beta=False"):
        h_dst, h_src, slot_src, filled, edge_attr = _case(0)
        attend_slots(conv, h_dst, h_src, slot_src, filled, edge_attr[filled])
