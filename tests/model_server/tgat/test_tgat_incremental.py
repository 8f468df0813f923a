"""Incremental re-embedding equals a full recompute at the same graph state (DESIGN.md), on real events (ML-100K,
see tgat_test_helpers.tgat_events)."""

import torch

from tgat_test_helpers import graph_store_edges, item_texts, one_thread, tgat_events  # noqa: F401 (fixtures)
from model_server.contract import InteractionBatch
from model_server.tgat import TGATConfig, TrainConfig, build_streamrec
from model_server.tgat.model import load_weights

TOLERANCE = 1e-5


def _model(data, **options):
    rec = build_streamrec(
        TGATConfig(dim=32, k=10), TrainConfig(epochs=1, progress=False), device="cpu", text=False, **options
    )
    rec.observe_items(item_texts(data))
    return rec


def _fresh_error(rec) -> float:
    n = rec.graph.num_nodes
    fresh = rec.store.fresh[:n] & ~rec.store.stale[:n]
    return float((rec.store.embedding[:n][fresh] - rec.full_recompute()[fresh]).abs().max())


def test_deferred_sampling_users_are_stale_until_ranked_or_swept_and_then_exact(tgat_events):
    """The live worker's configuration: users reached only as samplers of a batch's items wait for the sweep (or
    for their own ranking); the batch's own nodes and the items are exact at once."""
    data = tgat_events
    stream = InteractionBatch(data.users, data.items, data.types, data.ts)
    rec = _model(data, sweep_per_observe=0, defer_users=True, exact_items=False)
    rec.fit(stream.slice(0, 400), stream.slice(400, 500))
    deferred = 0
    for start in range(500, len(stream), 50):
        batch = stream.slice(start, start + 50)
        rec.observe(batch)
        assert _fresh_error(rec) <= TOLERANCE  # every row not marked stale is exact
        stale = rec.store.stale[: rec.graph.num_nodes]
        assert not bool(stale[rec.graph.item_node[torch.tensor(rec.items.lookup(batch.items))]].any())
        assert not bool(stale[rec.graph.user_node[torch.tensor(rec.users.lookup(batch.users))]].any())
        deferred = max(deferred, int(stale[rec.graph.user_node[: len(rec.users)]].sum()))
    assert deferred > 0  # some users did wait
    waiting = [u for u in rec.users.ids if bool(rec.store.stale[rec.graph.user_node[rec.users.get(u)]])]
    rec.score(waiting[:5])  # ranking a stale user refreshes it first
    assert not bool(rec.store.stale[rec.graph.user_node[torch.tensor(rec.users.lookup(waiting[:5]))]].any())
    rec.sweep_stale()
    assert rec.staleness == 0
    full = rec.full_recompute()
    assert float((rec.store.embedding[: rec.graph.num_nodes] - full).abs().max()) <= TOLERANCE


def test_incremental_refresh_then_sweep_equals_full_recompute(tgat_events):
    data = tgat_events
    stream = InteractionBatch(data.users, data.items, data.types, data.ts)
    rec = _model(data, max_fanout=40, sweep_per_observe=0)  # a tight bound, so the stale path is exercised
    rec.fit(stream.slice(0, 400), stream.slice(400, 500))
    worst, peak_stale = 0.0, 0
    for start in range(500, len(stream), 50):
        rec.observe(stream.slice(start, start + 50))
        worst = max(worst, _fresh_error(rec))  # every row not marked stale is already exact
        peak_stale = max(peak_stale, rec.staleness)
    assert worst <= TOLERANCE
    assert peak_stale > 0
    rec.sweep_stale(max_nodes=100)
    assert _fresh_error(rec) <= TOLERANCE
    rec.sweep_stale()
    assert rec.staleness == 0
    full = rec.full_recompute()
    assert bool(rec.store.fresh[: rec.graph.num_nodes].all())
    assert float((rec.store.embedding[: rec.graph.num_nodes] - full).abs().max()) <= TOLERANCE

    # the same state rebuilt from the graph store's edges (one per user, item, type) gives the same rows
    rebuilt = _model(data)
    load_weights(rebuilt.model, rec.model.state_dict())
    rebuilt.users.add(rec.users.ids)
    rebuilt.items.add(rec.items.ids)
    rebuilt.rebuild_from_edges(*graph_store_edges(stream))
    n = rec.graph.num_nodes
    assert torch.equal(rebuilt.graph.buffer.nbr[:n], rec.graph.buffer.nbr[:n])
    user = stream.users[-1]
    expected = sorted(
        ((i, t, ts) for u, i, t, ts in zip(*graph_store_edges(stream)) if u == user),
        key=lambda e: (-e[2], e[0].encode(), e[1]),
    )[: rec.config.k]
    assert rebuilt.recent_neighbours(user) == rec.recent_neighbours(user) == expected
    assert float((rebuilt.store.embedding[:n] - rec.store.embedding[:n]).abs().max()) <= TOLERANCE

    # and read a page at a time, pages in another order (the worker's warm start reads pages of users, newest
    # edges not last): the same state
    paged = _model(data)
    load_weights(paged.model, rec.model.state_dict())
    paged.users.add(rec.users.ids)
    paged.items.add(rec.items.ids)
    edges = list(zip(*graph_store_edges(stream)))[::-1]
    paged.begin_rebuild()
    for start in range(0, len(edges), 700):
        paged.rebuild_page(*map(list, zip(*edges[start : start + 700])))
    paged.finish_rebuild()
    assert torch.equal(paged.graph.buffer.nbr[:n], rec.graph.buffer.nbr[:n])
    every_user = rebuilt.graph.user_node[: len(rebuilt.users)]
    for got, want in zip(paged.graph.seen_pairs(every_user), rebuilt.graph.seen_pairs(every_user)):
        assert torch.equal(got, want)
    assert torch.equal(paged.graph.degree, rebuilt.graph.degree)
    assert float((paged.store.embedding[:n] - rec.store.embedding[:n]).abs().max()) <= TOLERANCE
    assert paged.recommend([user], 10, because=0) == rebuilt.recommend([user], 10, because=0)


def test_leaving_out_the_samplers_is_caught(tgat_events):
    """Control: without the one-hop-out nodes the store drifts from the recompute, so the check above has teeth."""
    data = tgat_events
    stream = InteractionBatch(data.users, data.items, data.types, data.ts)
    rec = _model(data, auto_refresh=False)
    rec.observe(stream.slice(0, 1000))
    rec.refresh(torch.arange(rec.graph.num_nodes))
    rec.observe(stream.slice(1000, 1100))
    rec.refresh(rec.affected_nodes(hops=0))
    assert _fresh_error(rec) > 1e-3


def test_new_user_gets_a_list_after_the_first_event(tgat_events):
    data = tgat_events
    stream = InteractionBatch(data.users, data.items, data.types, data.ts)
    rec = _model(data)
    rec.observe(stream.slice(0, 500))
    item = stream.items[0]
    rec.observe(InteractionBatch(["brand-new-user"], [item], ["view"], [stream.ts[499] + 1]))
    lists = rec.recommend(["brand-new-user"], 5, exclude="none")
    assert len(lists[0]) == 5
    assert all(entry["because"] and entry["because"][0]["id"] == item for entry in lists[0])
