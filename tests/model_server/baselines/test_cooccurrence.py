import math
from collections import deque

import pytest
import torch

from model_server.baselines.cooccurrence import ItemCooccurrence, NeighbourLists
from model_server.contract import InteractionBatch
from stream.events import Item


def batch(*events):
    users, items, types, ts = zip(*events)
    return InteractionBatch(list(users), list(items), list(types), list(ts))


def test_items_bought_together_are_recommended_together():
    model = ItemCooccurrence(repeat_weight=0.0)
    model.observe(
        batch(
            ("a", "phone", "view", 1),
            ("a", "case", "view", 2),
            ("b", "phone", "view", 3),
            ("b", "case", "purchase", 4),
            ("c", "tv", "view", 5),
            ("c", "remote", "view", 6),
        )
    )
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

    def ids(policy):
        return {r["item_id"] for r in model.recommend(["a"], k=10, exclude=policy)[0]}

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


# -- the bounded neighbour lists -------------------------------------------------------------------------------
class DenseCooccurrence(ItemCooccurrence):
    """Reference only: the former model, a dense item x item matrix filled event by event from each user's
    recent items, scored by a dense product. Popularity and normalisation are inherited (unchanged code)."""

    def __init__(self, **params):
        super().__init__(**params)
        self.dense = torch.zeros(0, 0)

    def _grow(self) -> None:
        n = len(self.items)
        if n > self.dense.shape[0]:
            grown = torch.zeros(n, n)
            grown[: self.dense.shape[0], : self.dense.shape[0]] = self.dense
            self.dense = grown

    def _observe_pairs(self, users, items, weights, growth=None):
        rows, cols, pair_weights = [], [], []
        for u, i, w in zip(users.tolist(), items.tolist(), weights.tolist()):
            recent = self.recent.setdefault(u, deque(maxlen=self.window))
            for j, wj in recent:
                if j != i:
                    rows.append(i)
                    cols.append(j)
                    pair_weights.append(min(w, wj))
            recent.append((i, w))
        self._add_pairs(
            torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long), torch.tensor(pair_weights)
        )

    def _add_pairs(self, rows, cols, pair_weights):
        self._grow()
        self.dense.index_put_((rows, cols), pair_weights, accumulate=True)
        self.dense.index_put_((cols, rows), pair_weights, accumulate=True)

    def _cooccurrence_scores(self, rows, items, values, shape):
        self._grow()
        profiles = torch.zeros(shape).index_put_((rows, items), values, accumulate=True)
        return profiles @ self.dense[: shape[1], : shape[1]]


def random_stream(n_events, n_users, n_items, seed=0):
    generator = torch.Generator().manual_seed(seed)
    users = torch.randint(n_users, (n_events,), generator=generator).tolist()
    items = torch.randint(n_items, (n_events,), generator=generator).tolist()
    kinds = ["view", "view", "view", "add_to_cart", "purchase"]
    types = [kinds[k] for k in torch.randint(len(kinds), (n_events,), generator=generator).tolist()]
    return batch(*[(f"u{u}", f"i{i}", t, 1_000 * k) for k, (u, i, t) in enumerate(zip(users, items, types))])


def observe_in_batches(model, stream, size):
    for start in range(0, len(stream), size):
        model.observe(stream.slice(start, start + size))


def test_scores_equal_the_dense_matrix_while_no_item_has_more_neighbours_than_the_lists_hold(monkeypatch):
    stream = random_stream(600, n_users=25, n_items=40)
    dense, sparse = DenseCooccurrence(window=5), ItemCooccurrence(window=5, max_neighbours=40)
    monkeypatch.setattr("model_server.baselines.cooccurrence.EVENTS_PER_CHUNK", 7)  # merges within a batch too
    observe_in_batches(dense, stream, 50)
    observe_in_batches(sparse, stream, 50)
    users = [f"u{u}" for u in range(25)] + ["stranger"]
    torch.testing.assert_close(sparse.score(users), dense.score(users))


def listed(model, item):
    """{neighbour id: stored weight} of an item's list."""
    neighbours, weights = model.cooc.neighbours(model.items.get(item))
    return {model.items.id_of(j): w for j, w in zip(neighbours, weights)}


def test_a_full_list_keeps_the_heaviest_neighbours():
    model = ItemCooccurrence(max_neighbours=2, repeat_weight=0.0)
    model.observe(
        batch(
            ("a", "hub", "purchase", 1),
            ("a", "x", "purchase", 2),  # hub-x weighs 3
            ("b", "hub", "view", 3),
            ("b", "y", "view", 4),  # hub-y 1 + 1
            ("c", "hub", "view", 5),
            ("c", "y", "view", 6),
        )
    )
    model.observe(batch(("d", "hub", "view", 7), ("d", "z", "view", 8)))  # hub-z 1: dropped
    assert listed(model, "hub") == {"x": 3.0, "y": 2.0}
    assert "hub" in listed(model, "z")  # z's own list has room
    top = model.recommend(["newcomer-of-hub"], k=1)  # unknown user: popularity only, still a full row
    assert len(top[0]) == 1


def test_a_warm_start_from_edges_rebuilds_the_lists():
    stream = random_stream(300, n_users=10, n_items=30, seed=1)
    streamed, rebuilt = ItemCooccurrence(), ItemCooccurrence()
    streamed.observe(stream)
    rebuilt.rebuild_from_edges(stream.users, stream.items, stream.types, stream.ts)
    torch.testing.assert_close(rebuilt.score(["u1", "u2"]), streamed.score(["u1", "u2"]))


def zipf_stream(n_events, n_users, n_items, generator, exponent=1.1):
    """Events whose items follow a Zipf-like popularity (item rank r drawn with weight r^-exponent)."""
    popularity = torch.arange(1, n_items + 1, dtype=torch.float64) ** -exponent
    items = torch.multinomial(popularity, n_events, replacement=True, generator=generator)
    users = torch.randint(n_users, (n_events,), generator=generator)
    return users, items


SCALE_EVENTS = 400_000  # under a minute on a shared 2-core machine


@pytest.mark.slow  # a scale test: 400k events over 200k items
def test_memory_is_bounded_by_the_lists_on_a_synthetic_200k_item_catalogue():
    """SYNTHETIC scale test: 400k events over a 200k-item catalogue with a Zipf-like popularity, observed in
    batches of 50k: enough for the popular items to fill their lists. A dense float32 item x item matrix would
    need 160 GB; the fixed [rows, max_neighbours] layout needed rows x max_neighbours x (4-byte index + 4-byte
    weight); the pool needs a few times the filled slots (blocks at most twice their lists, a pool at most
    POOL_GROWTH times the blocks, plus the blocks left behind by moves), plus 16 + 4 bytes per item."""
    n_items, n_users, n_events, max_neighbours = 200_000, 100_000, SCALE_EVENTS, 200
    model = ItemCooccurrence(window=5, max_neighbours=max_neighbours)
    model.observe_items([Item(f"i{i}", "") for i in range(n_items)])  # the whole catalogue is rankable
    users, items = zipf_stream(n_events, n_users, n_items, torch.Generator().manual_seed(0))
    user_ids, item_ids = [f"u{u}" for u in users.tolist()], [f"i{i}" for i in items.tolist()]
    for start in range(0, n_events, 50_000):
        stop = start + 50_000
        model.observe(
            InteractionBatch(
                user_ids[start:stop], item_ids[start:stop], ["view"] * (stop - start), list(range(start, stop))
            )
        )
    scores = model.score(user_ids[:64])
    fixed_layout = 2 * n_items * (max_neighbours * 8 + 8 + 4)  # rows x (list slots + length + popularity)
    filled = model.cooc.filled
    per_item = model.cooc.capacity * (16 + 4)
    print(
        f"tensor memory {model.tensor_bytes / 2**20:.1f} MiB for {filled:,} filled slots "
        f"({filled * 8 / 2**20:.1f} MiB); fixed layout {fixed_layout / 2**20:.0f} MiB"
    )
    assert scores.shape == (64, n_items) and torch.isfinite(scores).all()
    assert int(model.cooc.length.max()) == max_neighbours  # the popular items filled their lists
    assert model.tensor_bytes < 4 * filled * 8 + per_item
    assert model.tensor_bytes < fixed_layout / 4


# -- the pool of per-item blocks ---------------------------------------------------------------------------------
class FixedListsReference(ItemCooccurrence):
    """Reference only: the bounded lists as plain dicts, merged batch by batch the way the former fixed
    [rows, max_neighbours] layout merged them (listed entries grow, new ones are appended in item order, an
    overflowing list keeps its heaviest, ties to the smaller item index), scored by a dense product."""

    def __init__(self, **params):
        super().__init__(**params)
        self.lists: dict[int, dict[int, float]] = {}

    def _add_pairs(self, rows, cols, pair_weights):
        merged: dict[tuple[int, int], float] = {}
        for r, c, w in zip(
            torch.cat([rows, cols]).tolist(),
            torch.cat([cols, rows]).tolist(),
            torch.cat([pair_weights, pair_weights]).tolist(),
        ):
            merged[r, c] = merged.get((r, c), 0.0) + w
        by_row: dict[int, list[tuple[int, float]]] = {}
        for (r, c), w in sorted(merged.items()):
            by_row.setdefault(r, []).append((c, w))
        for r, entries in by_row.items():
            listed = self.lists.setdefault(r, {})
            for c, w in entries:
                listed[c] = listed.get(c, 0.0) + w
            if len(listed) > self.cooc.max_neighbours:
                heaviest = sorted(listed.items(), key=lambda cw: (-cw[1], cw[0]))[: self.cooc.max_neighbours]
                self.lists[r] = dict(heaviest)

    def _cooccurrence_scores(self, rows, items, values, shape):
        dense = torch.zeros(shape[1], shape[1], dtype=torch.float64)
        for r, listed in self.lists.items():
            for c, w in listed.items():
                dense[r, c] = w
        profiles = torch.zeros(shape, dtype=torch.float64).index_put_((rows, items), values.double(), accumulate=True)
        return (profiles @ dense).float()


def test_full_lists_evict_as_the_fixed_layout_did_and_score_the_same(monkeypatch):
    """Small lists (4 slots) over 60 items: most lists overflow, blocks double 4 -> 8 -> 10 and move, the pool is
    repacked; every batch's merge and eviction must match the plain reference, and so must the scores."""
    stream = random_stream(1_500, n_users=30, n_items=60, seed=2)
    pooled, reference = ItemCooccurrence(window=6, max_neighbours=10), FixedListsReference(window=6, max_neighbours=10)
    monkeypatch.setattr("model_server.baselines.cooccurrence.EVENTS_PER_CHUNK", 11)
    for start in range(0, len(stream), 40):
        pooled.observe(stream.slice(start, start + 40))
        reference.observe(stream.slice(start, start + 40))
        for item in range(len(pooled.items)):
            neighbours, weights = pooled.cooc.neighbours(item)
            assert dict(zip(neighbours, weights)) == pytest.approx(reference.lists.get(item, {}))
    assert int(pooled.cooc.length.max()) == 10 and int(pooled.cooc.length.min()) < 10
    users = [f"u{u}" for u in range(30)] + ["stranger"]
    torch.testing.assert_close(pooled.score(users), reference.score(users))


@pytest.mark.slow  # a scale test: 1M items, 4M pairs
def test_a_sparse_catalogue_uses_memory_in_proportion_to_its_filled_slots():
    """SYNTHETIC: 1M items with ~8 neighbours each (4M random pairs, both directions) plus 100 hubs whose lists
    fill all 200 slots. The fixed [rows, 200] layout took 1M x 200 x 8 bytes = 1.5 GiB for ~64 MiB of filled
    slots; the pool must stay within 3x the filled slots plus 16 bytes per item, under 200 MiB."""
    n_items, n_pairs, n_hubs, max_neighbours = 1_000_000, 4_000_000, 100, 200
    lists = NeighbourLists(max_neighbours)
    lists.ensure_rows(n_items)
    generator = torch.Generator().manual_seed(0)
    for _ in range(8):
        rows = torch.randint(n_items, (n_pairs // 8,), generator=generator)
        cols = torch.randint(n_items, (n_pairs // 8,), generator=generator)
        hub_rows = torch.randint(n_hubs, (20_000,), generator=generator)
        hub_cols = torch.randint(n_hubs, n_items, (20_000,), generator=generator)
        rows, cols = torch.cat([rows, hub_rows]), torch.cat([cols, hub_cols])
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
        lists.add(torch.cat([rows, cols]), torch.cat([cols, rows]), torch.ones(2 * len(rows)))
    filled = lists.filled
    fixed_layout = n_items * max_neighbours * 8
    print(
        f"tensor memory {lists.nbytes / 2**20:.1f} MiB for {filled:,} filled slots ({filled * 8 / 2**20:.1f} MiB), "
        f"mean list {filled / n_items:.1f}; fixed layout {fixed_layout / 2**20:.0f} MiB"
    )
    assert int(lists.length[:n_hubs].min()) == max_neighbours  # the hubs filled their lists
    assert 7 * n_items < filled < 9 * n_items
    assert lists.nbytes < 3 * filled * 8 + 16 * n_items
    assert lists.nbytes < 200 * 2**20 < fixed_layout / 7


# -- decay of the co-occurrence weights --------------------------------------------------------------------------
def stale_then_new(model, new_batches):
    """hub co-occurs 10 times with x and with y at t=0, then never again; from t=60 s on, one new user a minute
    views hub then z (weight 1 per batch, under the listed weights of 10)."""
    model.observe(
        batch(
            *[
                event
                for k in range(10)
                for event in (
                    (f"old{k}", "hub", "view", k),
                    (f"old{k}", "x", "view", k + 1),
                    (f"old{k}", "y", "view", k + 2),
                )
            ]
        )
    )
    for minute in range(1, new_batches + 1):
        ts = 60_000 * minute
        model.observe(batch((f"new{minute}", "hub", "view", ts), (f"new{minute}", "z", "view", ts + 1)))
    return model


def test_with_decay_a_repeatedly_co_occurring_newcomer_displaces_a_stale_neighbour():
    decayed = stale_then_new(ItemCooccurrence(max_neighbours=2, repeat_weight=0.0, cooccurrence_half_life_s=60.0), 8)
    undecayed = stale_then_new(ItemCooccurrence(max_neighbours=2, repeat_weight=0.0), 8)
    assert set(listed(undecayed, "hub")) == {"x", "y"}  # z's weight of 1 per batch never beats 10
    assert "z" in set(listed(decayed, "hub"))  # 10 halves every minute: under 1 after four
    assert "z" not in set(
        listed(
            stale_then_new(ItemCooccurrence(max_neighbours=2, repeat_weight=0.0, cooccurrence_half_life_s=60.0), 3),
            "hub",
        )
    )
    decayed.observe(batch(("q", "hub", "view", 60_000 * 9)))
    undecayed.observe(batch(("q", "hub", "view", 60_000 * 9)))
    assert decayed.recommend(["q"], k=1, exclude="seen")[0][0]["item_id"] == "z"
    assert undecayed.recommend(["q"], k=1, exclude="seen")[0][0]["item_id"] != "z"


def test_decayed_weights_stay_finite_far_past_the_reference_time():
    """A half-life of one second over 1,000 s (the reference time moves on several times): the stored weights
    stay finite and the recent co-occurrence leads."""
    model = ItemCooccurrence(max_neighbours=4, repeat_weight=0.0, popularity_weight=0.0, cooccurrence_half_life_s=1.0)
    model.observe(batch(("a", "hub", "purchase", 0), ("a", "old", "purchase", 1)))
    for second in range(10, 1_000, 10):
        model.observe(
            batch((f"u{second}", "hub", "view", 1_000 * second), (f"u{second}", "new", "view", 1_000 * second + 1))
        )
    weights = listed(model, "hub")
    assert all(math.isfinite(w) for w in weights.values()) and weights["new"] > weights.get("old", 0.0)
    model.observe(batch(("q", "hub", "view", 1_000_000)))
    scores = model.score(["q"])
    assert torch.isfinite(scores).all()
    assert model.recommend(["q"], k=1, exclude="seen")[0][0]["item_id"] == "new"


def test_the_default_has_no_decay_and_keeps_its_version():
    assert ItemCooccurrence().version() == ItemCooccurrence(cooccurrence_half_life_s=None).version()
    assert "cooccurrence_half_life_s" not in ItemCooccurrence().params
    assert ItemCooccurrence(cooccurrence_half_life_s=60.0).version() != ItemCooccurrence().version()
    with pytest.raises(ValueError):
        ItemCooccurrence(cooccurrence_half_life_s=0.0)
