import torch

from model_server.baselines.sasrec import SASRec, SASRecNetwork, left_pad, training_windows
from model_server.contract import InteractionBatch
from model_server.evaluation import registry

CYCLE = ["A", "B", "C", "D", "E", "F"]


def cyclic_stream(n_users: int, length: int, offset: int = 0, start_ts: int = 0) -> InteractionBatch:
    """Each user walks the cycle A -> B -> ... -> F -> A from their own starting point; events interleaved by
    time across users, so the chronological split cuts every user's walk."""
    users, items, ts = [], [], []
    for step in range(length):
        for u in range(n_users):
            users.append(f"u{u}")
            items.append(CYCLE[(u + offset + step) % len(CYCLE)])
            ts.append(start_ts + step * n_users + u)
    return InteractionBatch(users, items, ["view"] * len(users), ts)


def small_model(**kwargs) -> SASRec:
    defaults = dict(dim=16, max_len=8, blocks=1, dropout=0.0, lr=1e-2, epochs=30, patience=60, progress=False)
    return SASRec(**{**defaults, **kwargs})


def test_the_causal_mask_hides_the_future():
    torch.manual_seed(0)
    network = SASRecNetwork(n_items=10, dim=8, max_len=6, blocks=2, heads=1, dropout=0.0).eval()
    rows, lengths = left_pad([[1, 2, 3, 4], [5, 6]], 6)
    changed = rows.clone()
    changed[:, -1] = 9  # only the newest item differs
    with torch.no_grad():
        before, after = network(rows, lengths), network(changed, lengths)
    assert torch.allclose(before[:, :-1], after[:, :-1])
    assert not torch.allclose(before[:, -1], after[:, -1])


def test_padding_does_not_leak_into_real_positions():
    torch.manual_seed(0)
    network = SASRecNetwork(n_items=10, dim=8, max_len=6, blocks=2, heads=1, dropout=0.0).eval()
    rows, lengths = left_pad([[3, 4]], 6)
    with torch.no_grad():
        hidden = network(rows, lengths)
    assert torch.isfinite(hidden).all()
    longer = rows.clone()
    longer[0, 0] = 7  # a padding slot gets an item, but the length still says it is padding
    with torch.no_grad():
        assert torch.allclose(network(longer, lengths)[:, -2:], hidden[:, -2:])


def test_training_windows_cover_every_transition_once():
    windows = training_windows([list(range(1, 12))], max_len=4)
    transitions = [(w[k], w[k + 1]) for w in windows for k in range(len(w) - 1)]
    assert sorted(transitions) == [(k, k + 1) for k in range(1, 11)]
    assert all(len(w) <= 5 for w in windows)


def test_a_repeated_sequence_is_learned():
    model = small_model(epochs=60)
    model.fit(cyclic_stream(12, 10), cyclic_stream(12, 2, offset=10, start_ts=1000))
    top = model.recommend([f"u{u}" for u in range(12)], k=1, exclude="none")
    for u, row in enumerate(top):
        last = CYCLE[(u + 9) % len(CYCLE)]
        assert row[0]["item_id"] == CYCLE[(CYCLE.index(last) + 1) % len(CYCLE)]


def test_observe_grows_the_sequence_and_changes_the_scores():
    model = small_model(epochs=5)
    model.fit(cyclic_stream(6, 6))
    user = model.users.get("u0")
    length = len(model.sequences[user])
    before = model.score(["u0"])
    model.observe(InteractionBatch(["u0"], ["C"], ["view"], [10_000]))
    assert len(model.sequences[user]) == length + 1
    assert not torch.allclose(before, model.score(["u0"]))


def test_fit_is_deterministic_under_a_seed():
    stream, validation = cyclic_stream(8, 6), cyclic_stream(8, 2, offset=6, start_ts=1000)
    first, second = small_model(epochs=4, dropout=0.2, seed=3), small_model(epochs=4, dropout=0.2, seed=3)
    first.fit(stream, validation)
    second.fit(stream, validation)
    assert first.fit_log == second.fit_log
    assert torch.equal(first.score(["u1", "u5"]), second.score(["u1", "u5"]))


def test_fit_leaves_the_state_of_the_training_events_only():
    model = small_model(epochs=2)
    model.fit(cyclic_stream(4, 5), cyclic_stream(5, 2, offset=5, start_ts=1000))
    assert "u4" not in model.users  # a validation-only user
    assert all(len(s) == 5 for s in model.sequences.values())


def test_new_users_get_popularity_and_new_items_rank_below_trained_ones():
    model = small_model(epochs=2)
    model.fit(cyclic_stream(4, 6))
    model.observe(InteractionBatch(["u0", "u1", "u2"] * 2, ["G"] * 6, ["view"] * 6, [10_000] * 6))
    stranger = model.score(["stranger"])[0]
    assert int(stranger.argmax()) == model.items.get("G")  # the most observed item
    known = model.score(["u3"])[0]
    assert known[model.items.get("G")] < known[: model.n_trained].min()
    assert model.score(["u0"]).shape == (1, len(model.items))


def test_demoting_seen_items_puts_them_below_the_unseen_in_their_order():
    model = small_model(epochs=2)
    model.fit(cyclic_stream(3, 3))
    kept = model.score(["u0"])[0]
    model.demote_seen = True
    demoted = model.score(["u0"])[0]
    seen = torch.tensor([model.items.get(i) for i in ("A", "B", "C")])
    unseen = torch.tensor([model.items.get(i) for i in ("D", "E", "F")])
    assert demoted[seen].max() < demoted[unseen].min()
    assert torch.equal(demoted[unseen], kept[unseen])
    assert torch.equal(demoted[seen].argsort(), kept[seen].argsort())


def test_the_validation_keeps_seen_items_where_the_next_item_is_a_repeat():
    def repeats(steps: int, start_ts: int) -> InteractionBatch:  # every user views their own item again and again
        events = [(f"u{u}", CYCLE[u], start_ts + 6 * step + u) for step in range(steps) for u in range(6)]
        return InteractionBatch(
            [e[0] for e in events], [e[1] for e in events], ["view"] * len(events), [e[2] for e in events]
        )

    model = small_model(epochs=3)
    model.fit(repeats(4, 0), repeats(2, 1000))
    assert model.fit_log[0]["validation_mrr"] > model.fit_log[0]["validation_mrr_seen_demoted"]
    assert model.demote_seen is False


def test_registered_for_the_evaluation():
    context = registry.ModelContext("synthetic", n_users=4, n_items=6, epochs=3, progress=False)
    model = registry.build("sasrec", context)
    assert isinstance(model, SASRec) and model.epochs == 3
    assert "sasrec" in registry.DESCRIPTIONS
