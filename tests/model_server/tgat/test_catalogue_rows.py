"""What the graph keeps for ranking instead of reading it afresh each batch (the item-major copy of the items'
prior inputs, the newest event time) equals a read of the graph after every kind of change: small batches with
new items, a replay, a rebuild from edges, a new pair set, a state loaded into a new graph."""

import torch
from tgat_test_helpers import graph_store_edges, one_thread, tgat_events  # noqa: F401 (fixtures)

from model_server.contract import InteractionBatch
from model_server.tgat import TGATConfig, build_streamrec
from model_server.tgat.graph_state import TemporalGraph
from model_server.tgat.neighbours import EMPTY


def _gathered(graph: TemporalGraph, n_items: int):
    nodes = graph.item_node[:n_items]
    nbr, _, ts = graph.buffer.rows(nodes)
    return ts, (nbr != EMPTY).float(), torch.log1p(graph.degree[nodes].float())[:, None] / 5.0


def _assert_in_step(rec) -> None:
    graph, n_items = rec.graph, len(rec.items)
    assert torch.equal(graph.newest_time(), graph.buffer.ts[: graph.num_nodes, 0].max())
    for copied, gathered in zip(graph.catalogue.read(graph, n_items), _gathered(graph, n_items)):
        assert torch.equal(copied, gathered)
    with torch.no_grad():
        for new_user in (False, True):
            served = rec.model.catalogue_prior(graph, n_items, new_user)
            assert torch.equal(served, rec.model.item_prior(graph, graph.item_node[:n_items], new_user))


def test_the_copy_follows_every_change_of_the_graph(tgat_events):
    rec = build_streamrec(TGATConfig(dim=8, k=4), device="cpu", text=False, seed=0)
    stream = InteractionBatch(tgat_events.users, tgat_events.items, tgat_events.types, tgat_events.ts)
    for start in range(0, 600, 7):  # batches of 7: new items arrive between reads
        rec.observe(stream.slice(start, start + 7))
        _assert_in_step(rec)
    rec.observe(stream.slice(0, 100))  # a replay changes nothing, and the copy agrees
    _assert_in_step(rec)

    rec.rebuild_from_edges(*graph_store_edges(stream.slice(0, 900)))
    _assert_in_step(rec)
    rec.graph.set_seen(rec.graph.seen[: rec.graph.seen.numel() // 2])
    _assert_in_step(rec)

    loaded = build_streamrec(TGATConfig(dim=8, k=4), device="cpu", text=False, seed=0)
    loaded.users, loaded.items = rec.users, rec.items
    loaded.model = rec.model
    loaded.graph.catalogue.read(loaded.graph, 0)  # a read before the load must not survive it
    loaded.graph.load_state_dict(rec.graph.state_dict())
    _assert_in_step(loaded)
