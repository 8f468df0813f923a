import torch

from model_server.baselines.cooccurrence import ItemCooccurrence
from model_server.contract import InteractionBatch
from stream.events import Item


def batch(*events):
    users, items, types, ts = zip(*events)
    return InteractionBatch(list(users), list(items), list(types), list(ts))


def test_items_bought_together_are_recommended_together():
    model = ItemCooccurrence(repeat_weight=0.0)
    model.observe(batch(("a", "phone", "view", 1), ("a", "case", "view", 2), ("b", "phone", "view", 3),
                        ("b", "case", "purchase", 4), ("c", "tv", "view", 5), ("c", "remote", "view", 6)))
    model.observe(batch(("d", "phone", "view", 7)))
    top = model.recommend(["d"], k=1, exclude="seen")[0]
    assert top[0]["item_id"] == "case"


def test_scores_cover_the_whole_catalogue_including_items_without_events():
    model = ItemCooccurrence()
    model.observe_items([Item("new-item", "A new thing")])
    model.observe(batch(("a", "x", "view", 1)))
    scores = model.score(["a", "stranger"])
    assert scores.shape == (2, 2)
    assert torch.isfinite(scores).all()


def test_exclusion_policies():
    model = ItemCooccurrence()
    model.observe(batch(("a", "x", "view", 1), ("a", "y", "purchase", 2), ("b", "z", "view", 3)))
    ids = lambda policy: {r["item_id"] for r in model.recommend(["a"], k=10, exclude=policy)[0]}
    assert ids("none") == {"x", "y", "z"}
    assert ids("purchased") == {"x", "z"}
    assert ids("seen") == {"z"}


def test_a_new_user_gets_popular_items():
    model = ItemCooccurrence()
    model.observe(batch(("a", "x", "view", 1), ("b", "x", "view", 2), ("c", "y", "view", 3)))
    assert model.recommend(["newcomer"], k=1)[0][0]["item_id"] == "x"


def test_capacity_grows_past_the_initial_allocation():
    model = ItemCooccurrence()
    events = [(f"u{k % 7}", f"i{k}", "view", k) for k in range(200)]
    model.observe(batch(*events))
    assert model.score(["u1"]).shape == (1, 200)
