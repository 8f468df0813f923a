"""The graph's per-node columns grow in place: a batch that brings a node appends to them instead of copying
every column whole, and what they hold is what they held before plus the new nodes."""

import torch

from model_server.tgat.graph_state import TemporalGraph


def test_new_nodes_are_appended_without_copying_the_columns():
    graph = TemporalGraph(k=4, text_dim=8, device=torch.device("cpu"))
    graph.ensure_half_lives([60_000])
    users, items = [f"u{k}" for k in range(3)], [f"i{k}" for k in range(2)]
    graph.sync(users, items)
    graph.insert(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([1_000, 2_000]))
    columns = ("node_kind", "node_local", "user_node", "item_node", "degree", "decayed")
    before = {name: getattr(graph, name).clone() for name in columns}
    where = {name: getattr(graph, name).data_ptr() for name in columns}
    users.append("u3")
    items.append("i2")
    graph.sync(users, items)
    for name in columns:
        assert getattr(graph, name).data_ptr() == where[name], name  # the same storage, appended to
    assert graph.node_kind.tolist() == before["node_kind"].tolist() + [0, 1]  # users first, then items
    assert graph.node_local.tolist() == before["node_local"].tolist() + [3, 2]
    assert graph.user_node.tolist() == before["user_node"].tolist() + [5]
    assert graph.item_node.tolist() == before["item_node"].tolist() + [6]
    assert graph.degree.tolist() == before["degree"].tolist() + [0, 0]
    assert torch.equal(graph.decayed[:, :5], before["decayed"]) and not graph.decayed[:, 5:].any()
    assert graph.decayed.shape == (1, 7)
