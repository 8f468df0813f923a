"""The retention rule (STREAMREC_RETENTION_DAYS): a model that streamed events with a retention holds what a warm
start gives from the edges it kept, whether the graph store has deleted the older ones yet or not, so that a
restarted or added worker serves the same lists as one that ran all along."""

import random

import pytest
import torch

from model_server.baselines.cooccurrence import ItemCooccurrence
from model_server.contract import InteractionBatch, retention_cutoff
from model_server.tgat import TGATRecommender, build_streamrec

from tgat_test_helpers import graph_store_edges, one_thread  # noqa: F401  (a fixture)

HOUR = 3_600_000
RETENTION = 6 * HOUR


def synthetic(n: int, seed: int, start: int, spacing: int) -> InteractionBatch:
    rng = random.Random(seed)
    users = [f"u{rng.randrange(40)}" for _ in range(n)]
    items = [f"i{min(rng.randrange(60), rng.randrange(60))}" for _ in range(n)]
    types = [rng.choice(["view", "view", "click", "add_to_cart", "purchase"]) for _ in range(n)]
    return InteractionBatch(users, items, types, [start + spacing * k for k in range(n)])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    history = synthetic(600, 1, 1_600_000_000_000, 60_000)
    model = build_streamrec(
        {"dim": 16, "heads": 1, "k": 5}, {"epochs": 1, "negatives": 16, "progress": False}, seed=3, text=False
    )
    model.fit(history)
    return model.save(tmp_path_factory.mktemp("retention") / "v1")


def loaded(checkpoint) -> TGATRecommender:
    model = TGATRecommender.load(checkpoint, device="cpu", text=False, sweep_per_observe=0, defer_users=True)
    model.set_retention(RETENTION)
    return model


def state_of(model: TGATRecommender, users: list[str], items: list[str]) -> dict:
    """What the lists are made of, by id: each node's buffer row, each user's exclusions, and every score."""
    model.sweep_stale(None)
    order = torch.tensor(model.items.lookup(items))
    scores = model.score(users)[:, order]
    seen = model.history.excluded(torch.tensor(model.users.lookup(users)), "seen")
    bought = model.history.excluded(torch.tensor(model.users.lookup(users)), "purchased")
    return {
        "rows": {u: model.recent_neighbours(u) for u in users} | {i: model.recent_neighbours(i, "item") for i in items},
        "seen": sorted((users[r], model.items.id_of(c)) for r, c in zip(*(t.tolist() for t in seen))),
        "bought": sorted((users[r], model.items.id_of(c)) for r, c in zip(*(t.tolist() for t in bought))),
        "scores": scores,
    }


def test_a_warm_start_from_the_kept_edges_equals_the_model_that_streamed_with_the_retention(checkpoint):
    stream = synthetic(900, 2, 1_600_100_000_000, 90_000)  # 22.5 hours: the retention keeps the last 6
    streamed = loaded(checkpoint)
    for start in range(0, len(stream), 40):
        streamed.observe(stream.slice(start, start + 40))
    cutoff = streamed.retention_cutoff
    assert cutoff == retention_cutoff(max(stream.ts), RETENTION)
    assert stream.ts[0] < cutoff  # something was forgotten

    every_edge = graph_store_edges(stream)
    kept = [k for k, ts in enumerate(every_edge[3]) if ts >= cutoff]
    pruned_store = tuple([column[k] for k in kept] for column in every_edge)
    users, items = sorted(set(stream.users)), sorted(set(stream.items))
    expected = state_of(streamed, users, items)
    for edges in (every_edge, pruned_store):  # the graph store before and after its own deletion
        restarted = loaded(checkpoint)
        restarted.rebuild_from_edges(*edges)
        assert restarted.retention_cutoff == cutoff
        state = state_of(restarted, users, items)
        assert state["rows"] == expected["rows"]
        assert state["seen"] == expected["seen"] and state["bought"] == expected["bought"]
        assert torch.allclose(state["scores"], expected["scores"], atol=1e-5)
    assert all(ts >= cutoff for row in expected["rows"].values() for _, _, ts in row)
    assert len(streamed.graph.pairs) == len({(every_edge[0][k], every_edge[1][k]) for k in kept})


def test_a_late_event_older_than_the_cutoff_is_left_out_and_a_purchase_stops_excluding_once_forgotten(checkpoint):
    model = loaded(checkpoint)
    t0 = 1_600_100_000_000
    model.observe(InteractionBatch(["u1"], ["i1"], ["purchase"], [t0]))
    assert model.history.excluded(torch.tensor(model.users.lookup(["u1"])), "purchased")[1].numel() == 1
    model.observe(InteractionBatch(["u2"], ["i2"], ["view"], [t0 + RETENTION + HOUR]))
    assert model.retention_cutoff is not None and t0 < model.retention_cutoff
    assert model.history.excluded(torch.tensor(model.users.lookup(["u1"])), "purchased")[1].numel() == 0
    assert model.recent_neighbours("u1") == []
    model.observe(InteractionBatch(["u3"], ["i3"], ["view"], [t0 + HOUR // 2]))  # late, and behind the cutoff
    assert model.recent_neighbours("u3") == []
    assert model.recent_neighbours("u2") == [("i2", "view", t0 + RETENTION + HOUR)]


def test_a_user_and_an_item_whose_every_edge_was_forgotten_are_served_as_a_worker_started_later_serves_them(
    checkpoint,
):
    t0 = 1_600_100_000_000
    early = InteractionBatch(["new-user", "u1"], ["new-item", "new-item"], ["view", "purchase"], [t0, t0])
    later = synthetic(200, 4, t0 + RETENTION + HOUR, 60_000)
    streamed = loaded(checkpoint)
    for batch in [early] + [later.slice(start, start + 50) for start in range(0, len(later), 50)]:
        streamed.observe(batch)
    assert streamed.retention_cutoff is not None and t0 < streamed.retention_cutoff
    users = ["new-user", "u1"] + sorted(set(later.users))

    def lists(model):
        model.sweep_stale(None)
        return [[(e["item_id"], round(e["score"], 4)) for e in row] for row in model.recommend(users, 10, because=0)]

    expected = lists(streamed)
    assert all(item != "new-item" for row in expected for item, _ in row)
    every_edge = graph_store_edges(InteractionBatch(*(a + b for a, b in zip(_columns(early), _columns(later)))))
    kept = graph_store_edges(later)
    for edges in (every_edge, kept):  # the graph store before and after its own deletion
        restarted = loaded(checkpoint)
        restarted.rebuild_from_edges(*edges)
        assert lists(restarted) == expected


def _columns(batch: InteractionBatch) -> tuple[list, list, list, list]:
    return batch.users, batch.items, batch.types, batch.ts


def test_the_cutoff_moves_in_steps_of_a_64th_of_the_retention():
    step = RETENTION // 64
    for newest in (10 * HOUR, 10 * HOUR + 1, 10 * HOUR + step, 1_600_100_000_000):
        cutoff = retention_cutoff(newest, RETENTION)
        assert cutoff % step == 0 and newest - RETENTION - step < cutoff <= newest - RETENTION
    assert retention_cutoff(5_500, 1_000) == 4_000  # a step of a second at least


def test_a_model_that_cannot_forget_refuses_a_retention():
    with pytest.raises(ValueError, match="cannot forget"):
        ItemCooccurrence().set_retention(RETENTION)
    ItemCooccurrence().set_retention(0)
