"""The item prior and the seen term: functions of graph state, rebuilt from the graph store's edges, ranked with
matrix ops; a user never seen gets the prior (a popularity-like list), a user with one event gets a list."""

import torch

from tgat_test_helpers import graph_store_edges, item_texts, one_thread, tgat_events  # noqa: F401 (fixtures)
from model_server.contract import InteractionBatch
from model_server.tgat import TGATConfig, TrainConfig, build_streamrec
from stream.events import Item


def _fitted(data, n=1200, **config):
    rec = build_streamrec(
        TGATConfig(dim=16, k=5, **config),
        TrainConfig(epochs=2, batch_size=100, progress=False),
        device="cpu",
        text=False,
        seed=1,
    )
    rec.observe_items(item_texts(data))
    stream = InteractionBatch(data.users, data.items, data.types, data.ts)
    rec.fit(stream.slice(0, int(n * 0.8)), stream.slice(int(n * 0.8), n))
    return rec, stream


def test_seen_pairs_and_degrees_match_the_events_and_a_rebuild(tgat_events):
    rec, stream = _fitted(tgat_events)
    rec.observe(stream.slice(1200, 1600))
    graph = rec.graph
    pairs = set(zip(stream.users[:1600], stream.items[:1600]))
    users = list(dict.fromkeys(stream.users[:1600]))
    rows, nodes = graph.seen_pairs(graph.user_node[torch.tensor(rec.users.lookup(users))])
    got = {(users[r], rec.items.id_of(int(graph.node_local[n]))) for r, n in zip(rows.tolist(), nodes.tolist())}
    assert got == pairs
    item = stream.items[0]
    node = graph.item_node[rec.items.get(item)]
    assert int(graph.degree[node]) == len({u for u, i in pairs if i == item})
    assert int(graph.newest_time()) == max(stream.ts[:1600])

    rebuilt, _ = _fitted(tgat_events)
    rebuilt.model.load_state_dict(rec.model.state_dict())
    rebuilt.users.add(rec.users.ids)
    rebuilt.items.add(rec.items.ids)
    rebuilt.rebuild_from_edges(*graph_store_edges(stream.slice(0, 1600)))
    n = graph.num_nodes
    assert torch.equal(rebuilt.graph.seen, graph.seen)
    assert torch.equal(rebuilt.graph.degree[:n], graph.degree[:n])
    assert torch.allclose(rebuilt.score(users[:40]), rec.score(users[:40]), atol=1e-5)


def test_seen_term_reaches_items_past_the_recent_slots(tgat_events):
    rec, stream = _fitted(tgat_events)
    counts = {}
    for u in stream.users[:1200]:
        counts[u] = counts.get(u, 0) + 1
    user = max(counts, key=counts.get)  # more distinct items than K slots
    seen = {rec.items.get(i) for u, i in zip(stream.users[:1200], stream.items[:1200]) if u == user}
    assert len(seen) > rec.config.k
    before = rec.score([user])[0]
    with torch.no_grad():
        rec.model.seen_bias.add_(5.0)
    delta = rec.score([user])[0] - before
    columns = torch.zeros_like(delta, dtype=torch.bool)
    columns[list(seen)] = True
    assert torch.allclose(delta[columns], torch.full((len(seen),), 5.0), atol=1e-4)
    assert float(delta[~columns].abs().max()) < 1e-5


def test_new_users_get_the_item_prior_a_popularity_like_list(tgat_events):
    rec, stream = _fitted(tgat_events)
    scores = rec.score(["never-seen-a", "never-seen-b"])
    prior = rec.model.item_prior(rec.graph, rec.graph.item_node[: len(rec.items)], new_user=True).detach()
    assert torch.equal(scores[0], scores[1]) and torch.allclose(scores[0], prior)
    # the prior ranks items that have edges above items without any (a popularity-like order)
    degree = rec.graph.degree[rec.graph.item_node[: len(rec.items)]]
    assert float(prior[degree > 0].mean()) > float(prior[degree == 0].mean())
    lists = rec.recommend(["never-seen-a"], 10, exclude="none")
    assert len(lists[0]) == 10

    # after one event the user is ranked by the model (the prior plus the match with the one neighbour)
    item = stream.items[1199]
    rec.observe(InteractionBatch(["one-event-user"], [item], ["view"], [stream.ts[1199] + 1]))
    one = rec.score(["one-event-user"])[0]
    assert not torch.allclose(one, rec.score(["never-seen-a"])[0])
    assert len(rec.recommend(["one-event-user"], 10, exclude="none")[0]) == 10


def test_terms_can_be_switched_off(tgat_events):
    rec, stream = _fitted(tgat_events, n=600, popularity=False, seen=False)
    assert not hasattr(rec.model, "popularity_head") and not hasattr(rec.model, "seen_bias")
    users = list(dict.fromkeys(stream.users[:600]))[:10]
    assert rec.score(users).shape == (10, len(rec.items))


def test_chosen_popularity_weights_rank_other_items_by_popularity_and_new_users_by_their_own_weight(tgat_events):
    rec, stream = _fitted(tgat_events)
    assert rec.fit_log and all("val_popularity_weight" in entry for entry in rec.fit_log)
    users = list(dict.fromkeys(stream.users[:1200]))[:20]
    graph, model = rec.graph, rec.model
    popularity = model.global_popularity(graph, graph.item_node[: len(rec.items)])
    new_popularity = model.global_popularity(graph, graph.item_node[: len(rec.items)], new_user=True)  # own half-life
    before_known, before_new = rec.score(users), rec.score(["never-seen"])[0]
    with torch.no_grad():
        model.popularity_weight.fill_(model.popularity_weight.item() + 2.0)
        model.new_user_popularity_weight.fill_(model.new_user_popularity_weight.item() + 3.0)
    # known users: +2 x popularity on every item the user has no edge to, nothing on the user's own items
    rows, nodes = graph.seen_pairs(graph.user_node[torch.tensor(rec.users.lookup(users))])
    own = torch.zeros(len(users), len(rec.items), dtype=torch.bool)
    own[rows, graph.node_local[nodes]] = True
    expected = torch.where(own, torch.zeros_like(before_known), 2.0 * popularity[None, :].expand_as(before_known))
    assert torch.allclose(rec.score(users) - before_known, expected, atol=1e-4)
    assert torch.allclose(rec.score(["never-seen"])[0] - before_new, 3.0 * new_popularity, atol=1e-4)


def test_a_large_own_recency_weight_ranks_the_users_recent_items_first_newest_first(tgat_events):
    rec, stream = _fitted(tgat_events)
    user = stream.users[1199]
    recent = list(dict.fromkeys(item for item, _, _ in rec.recent_neighbours(user)))  # distinct, newest first
    with torch.no_grad():
        rec.model.own_recency_weight.fill_(1e4)
    top = torch.topk(rec.score([user])[0], len(recent)).indices.tolist()
    assert [rec.items.id_of(i) for i in top] == recent
    assert rec.fit_log[0].get("val_own_recency_weight") is not None


def test_the_shared_attributes_term_lifts_items_like_the_users_newest_one(tgat_events):
    rec, stream = _fitted(tgat_events)
    graph = rec.graph
    user = stream.users[1199]  # an event at the end of the fitted part: the user's newest item
    newest = stream.items[1199]
    branded = [newest] + [i for i in dict.fromkeys(stream.items[:1200]) if i != newest][:30]
    rec.observe_items(
        [Item(i, tgat_events.item_info[i].title, tgat_events.item_info[i].category, "acme") for i in branded]
    )  # one brand for a few items, the newest one among them
    category = int(graph.side.category[rec.items.get(newest)])
    assert category >= 0  # ML-100K's genres are the category
    with torch.no_grad():
        rec.model.attribute_weight.zero_()  # whatever validation chose
    before, new_before = rec.score([user])[0], rec.score(["never-seen"])[0]
    with torch.no_grad():
        rec.model.attribute_weight.fill_(3.0)
    delta = rec.score([user])[0] - before
    items = torch.arange(len(rec.items))
    shared = (graph.side.category_of(items) == category).float() + (graph.side.brand_of(items) >= 0).float()
    assert {0.0, 1.0, 2.0} <= set(shared.tolist())  # items with neither, one and both attributes
    assert torch.allclose(delta, 3.0 * shared, atol=1e-4)
    assert torch.equal(rec.score(["never-seen"])[0], new_before)  # a user without edges has no newest item


def test_the_served_shared_attributes_term_equals_the_dense_one_to_the_last_bit():
    """Serving adds the term from the matching (user, item) pairs only, found in the side info's items_by (kept
    between batches); training's dense [users, catalogue] comparison is the reference. Random catalogues with
    missing attributes, side info for items past the catalogue, users without edges, newest neighbours past the
    catalogue, and attributes that change between two rankings."""
    from types import SimpleNamespace

    from model_server.tgat.features import ItemSideInfo
    from model_server.tgat.model import TemporalGAT

    generator = torch.Generator().manual_seed(0)

    def served_equals_dense(graph, users, n_items):
        scores = torch.randn(users.numel(), n_items, generator=generator)
        dense = scores.clone().add_(
            TemporalGAT.shared_attributes(None, graph, users, torch.arange(n_items)), alpha=1000.0
        )
        TemporalGAT._add_shared_attributes(scores, graph, users, 1000.0)
        return torch.equal(scores, dense)

    for _ in range(20):
        n_items, n_users, n_nodes = 500, 40, 700
        side = ItemSideInfo(4, torch.device("cpu"))
        side.ensure(n_items + 30)  # side info known for items the catalogue does not hold yet
        side.category[: n_items + 30] = torch.randint(-1, 7, (n_items + 30,), generator=generator)
        side.brand[: n_items + 30] = torch.randint(-1, 30, (n_items + 30,), generator=generator)
        nbr = torch.randint(-1, n_nodes, (n_nodes, 5), generator=generator)
        graph = SimpleNamespace(
            side=side,
            buffer=SimpleNamespace(rows=lambda nodes, t=nbr: (t[nodes], None, None)),
            node_local=torch.randint(0, n_items + 3, (n_nodes,), generator=generator),
        )
        users = torch.randint(0, n_nodes, (n_users,), generator=generator)
        assert served_equals_dense(graph, users, n_items)
        changed = torch.randint(0, n_items, (25,), generator=generator).tolist()
        side.set(changed, None, [f"c{k % 3}" for k in range(25)], [""] * 25)  # new categories, brands removed
        assert served_equals_dense(graph, users, n_items)
