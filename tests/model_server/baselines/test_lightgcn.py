"""LightGCN (model_server/baselines/lightgcn.py): the propagation against a dense hand computation, BPR training,
what the trained vectors rank, the text fusion, the static state and the cold-start rules."""

import random

import torch

from model_server.baselines.lightgcn import (
    TEXT_DIM,
    LightGCN,
    LightGCNNetwork,
    bpr_loss,
    normalized_adjacency,
    propagate,
)
from model_server.contract import InteractionBatch
from model_server.evaluation import registry
from model_server.streaming import split_stream
from streamrec.schema import Item


def two_communities(n_users: int = 40, n_items: int = 20, events: int = 1600, seed: int = 0) -> InteractionBatch:
    """Even users click even items, odd users odd items, uniformly within their half."""
    rng = random.Random(seed)
    users, items = [], []
    for _ in range(events):
        u = rng.randrange(n_users)
        users.append(f"u{u}")
        items.append(f"i{rng.randrange(n_items // 2) * 2 + u % 2}")
    return InteractionBatch(users, items, ["view"] * events, list(range(events)))


def small_model(**kwargs) -> LightGCN:
    defaults = dict(dim=16, layers=2, lr=0.05, epochs=15, patience=100, progress=False, text=False)
    return LightGCN(**{**defaults, **kwargs})


def test_propagation_matches_a_dense_hand_computation():
    users = torch.tensor([0, 0, 1, 1, 0])  # (0, 0) twice: one edge
    items = torch.tensor([0, 1, 1, 2, 0])
    adjacency = normalized_adjacency(users, items, n_users=3, n_items=3)  # user 2 has no edge
    a = torch.zeros(6, 6)
    for u, i in [(0, 0), (0, 1), (1, 1), (1, 2)]:
        a[u, 3 + i] = a[3 + i, u] = 1.0
    degree = a.sum(1)
    inverse_root = torch.where(degree > 0, degree.rsqrt(), torch.zeros(6))
    dense = inverse_root[:, None] * a * inverse_root[None, :]
    assert torch.allclose(adjacency.to_dense(), dense)
    assert abs(float(dense[0, 3]) - 2**-0.5) < 1e-6  # user 0 (degree 2), item 0 (degree 1): 1 / sqrt(2 * 1)
    e0 = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    expected = (e0 + dense @ e0 + dense @ dense @ e0 + dense @ dense @ dense @ e0) / 4
    assert torch.allclose(propagate(adjacency, e0, 3), expected, atol=1e-6)
    assert torch.allclose(propagate(adjacency, e0, 3)[2], e0[2] / 4)  # an isolated node keeps its layer 0 / (K+1)


def test_the_loss_is_bpr_plus_l2_on_layer_zero():
    final = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # one user, two items
    users0, items0 = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    one = torch.tensor([0])
    loss = bpr_loss(final, users0, items0, 1, one, one, torch.tensor([1]), l2=0.1)
    expected = -torch.log(torch.sigmoid(torch.tensor(2.0 - 0.0))) + 0.1 * (2.0 + 1.0 + 4.0) / 2
    assert torch.allclose(loss, expected)


def test_training_lowers_the_bpr_loss_and_ranks_the_users_community_first():
    train, validation, _ = split_stream(two_communities())
    model = small_model()
    model.fit(train, validation)
    losses = [record["train_loss"] for record in model.fit_log]
    assert losses[-1] < 0.6 * losses[0]
    scores = model.score(["u0", "u1"])
    even = torch.tensor([int(i[1:]) % 2 == 0 for i in model.items.ids])
    for row, own in ((0, even), (1, ~even)):  # every item of the user's community above every other item
        assert float(scores[row, own].min()) > float(scores[row, ~own].max())


def test_early_stopping_keeps_the_best_validation_epoch():
    train, validation, _ = split_stream(two_communities())
    model = small_model(epochs=12, patience=3)
    model.fit(train, validation)
    figures = [max(r["validation_mrr"], r["validation_mrr_seen_demoted"]) for r in model.fit_log]
    best = figures.index(max(figures))
    assert len(figures) <= best + 1 + 3  # stopped once 3 epochs in a row brought nothing better
    assert model.params["demote_seen"] == int(
        model.fit_log[best]["validation_mrr_seen_demoted"] > model.fit_log[best]["validation_mrr"]
    )
    kept, demoted = model._validation_mrr(validation, train)  # the restored weights: the best epoch's figures
    assert abs(kept - model.fit_log[best]["validation_mrr"]) < 1e-4
    assert abs(demoted - model.fit_log[best]["validation_mrr_seen_demoted"]) < 1e-4


def test_validation_leaves_the_state_of_the_training_part():
    train, validation, _ = split_stream(two_communities())
    model = small_model(epochs=2)
    model.fit(train, validation)
    assert len(model.users) == len(set(train.users))
    assert len(model.items) == len(set(train.items))


def test_static_after_fit_and_new_users_folded_in_from_their_items():
    train, validation, _ = split_stream(two_communities())
    model = small_model()
    model.fit(train, validation)
    before = model.score(["u0"]).clone()
    model.observe(InteractionBatch(["u0", "u0", "stranger"], ["i1", "i3", "i0"], ["view"] * 3, [10**6] * 3))
    after = model.score(["u0"])
    if not model.demote_seen:
        assert torch.equal(before, after)  # the training graph's vectors: observing changes nothing
    items, known = model.item_table()
    expected = items[model.items.get("i0")] @ items.T  # a new user: the mean of the vectors of their items
    assert torch.allclose(model._network_scores(["stranger"])[0], expected, atol=1e-5)
    popularity = model._network_scores(["nobody"])[0]  # no event at all: the training part's popularity
    counts = torch.tensor([train.items.count(i) for i in model.items.ids], dtype=torch.float32)
    assert torch.equal(popularity, counts)


def test_new_items_text_projection_or_below_every_known_item():
    vectors = {f"i{k}": torch.nn.functional.normalize(torch.randn(TEXT_DIM), dim=0) for k in range(20)}
    vectors["brand_new"] = vectors["i0"]  # a new item whose text is that of a trained item

    def encode(texts: list[str]) -> torch.Tensor:
        return torch.stack([vectors[t] for t in texts])

    train, validation, _ = split_stream(two_communities())
    model = small_model(text="auto", encode=encode)
    model.observe_items([Item(item_id=i, title=i) for i in sorted(vectors)])
    model.fit(train, validation)
    assert model.params["text"] == 1
    model.observe(InteractionBatch(["u5", "u5"], ["brand_new", "no_text"], ["view"] * 2, [10**6] * 2))
    items, known = model.item_table()
    new, bare = model.items.get("brand_new"), model.items.get("no_text")
    assert known[new] and not known[bare]
    with torch.no_grad():
        projected = model.network.text_projection(vectors["brand_new"]) / (model.layers + 1)
    assert torch.allclose(items[new], projected, atol=1e-6)
    scores = model._network_scores(["u0"])[0]
    assert float(scores[bare]) == float(scores[known].min()) - 1.0


def test_text_fusion_changes_the_items_layer_zero():
    text = torch.zeros(3, TEXT_DIM)
    text[1, 0] = 1.0
    network = LightGCNNetwork(2, 3, 4, trained=torch.tensor([True, True, False]), text=text)
    _, items = network.layer0()
    assert torch.allclose(items[0], network.item_embedding.weight[0])
    assert torch.allclose(items[1], network.item_embedding.weight[1] + network.text_projection.weight[:, 0])
    assert torch.allclose(items[2], torch.zeros(4))  # outside the graph and no text: nothing


def test_fit_is_deterministic_under_a_seed():
    train, validation, _ = split_stream(two_communities())
    first, second = small_model(epochs=3), small_model(epochs=3)
    first.fit(train, validation)
    second.fit(train, validation)
    assert torch.equal(first.score(["u0", "u7"]), second.score(["u0", "u7"]))


def test_registered_for_the_harness():
    context = registry.ModelContext("synthetic", n_users=40, n_items=20, seed=1, epochs=2, progress=False)
    model = registry.build("lightgcn", context)
    assert isinstance(model, LightGCN) and model.name == "lightgcn" and model.epochs == 2 and model.seed == 1
