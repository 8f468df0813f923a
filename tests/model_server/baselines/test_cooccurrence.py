"""The co-occurrence baseline: what it recommends, and that its state is a function of the graph store's edges
(one per user, item and type, with its newest time), so that any interleaving of different users' events, any
batching, replays and a warm start from the edges all give bit-identical scores."""

import math
import random

import pytest
import torch

from model_server.baselines.cooccurrence import (
    FIXED_POINT_BITS,
    TYPE_WEIGHTS,
    ItemCooccurrence,
    tie_key,
)
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


def test_it_says_its_observe_is_idempotent_and_its_version_names_the_new_state():
    assert ItemCooccurrence.observe_is_idempotent
    assert ItemCooccurrence().version() == ItemCooccurrence().version()
    assert ItemCooccurrence(window=5).version() != ItemCooccurrence().version()
    with pytest.raises(ValueError):
        ItemCooccurrence(window=0)


# -- the definition --------------------------------------------------------------------------------------------
def random_stream(n_events, n_users, n_items, seed=0, tick_ms=1_000):
    """Events in time order; times repeat (several events a tick) so that ties on time are common."""
    generator = random.Random(seed)
    kinds = ["view", "view", "view", "click", "add_to_cart", "purchase"]
    events = [
        (f"u{generator.randrange(n_users)}", f"i{generator.randrange(n_items)}", generator.choice(kinds), k // 3)
        for k in range(n_events)
    ]
    return [(u, i, t, tick_ms * s) for u, i, t, s in events]


def edges_of(events):
    """The graph store's edges: one per (user, item, type), with its newest time."""
    newest = {}
    for u, i, t, ts in events:
        newest[u, i, t] = max(ts, newest.get((u, i, t), ts))
    return [(u, i, t, ts) for (u, i, t), ts in newest.items()]


class Reference:
    """The model's definition in plain Python, from the edges: per user the `window` items with the newest pair
    times (ties by tie key), C[i][j] = sum over users of min(w(u, i), w(u, j)) over their recent sets, popularity
    the distinct users of each item weighted 2^(-age / half-life)."""

    def __init__(
        self, events, window=20, recency_decay=0.8, repeat_weight=0.5, popularity_weight=0.01, half_life_s=86_400.0
    ):
        pairs = {}
        for u, i, t, ts in edges_of(events):
            newest, weight = pairs.get((u, i), (ts, 0))
            pairs[u, i] = (max(newest, ts), max(weight, TYPE_WEIGHTS[t]))
        self.recent = {}
        for (u, i), (ts, w) in pairs.items():
            self.recent.setdefault(u, []).append((i, ts, w))
        for u, items in self.recent.items():
            self.recent[u] = sorted(items, key=lambda e: (-e[1], tie_key(e[0])))[:window]
        self.cooc = {}
        for items in self.recent.values():
            for i, _, wi in items:
                for j, _, wj in items:
                    if i != j:
                        self.cooc.setdefault(i, {})[j] = self.cooc.get(i, {}).get(j, 0) + min(wi, wj)
        newest = max(ts for ts, _ in pairs.values())
        self.popularity = {}
        for (u, i), (ts, _) in pairs.items():
            self.popularity[i] = self.popularity.get(i, 0.0) + 2.0 ** (-(newest - ts) / (half_life_s * 1000))
        self.recency_decay, self.repeat_weight, self.popularity_weight = recency_decay, repeat_weight, popularity_weight

    def scores(self, user, items):
        profile = [(i, w * self.recency_decay**rank) for rank, (i, _, w) in enumerate(self.recent.get(user, []))]
        cooc = {j: sum(v * self.cooc.get(i, {}).get(j, 0) for i, v in profile) for j in items}
        top = max(cooc.values()) or 1e-12
        repeat = dict(profile)
        top_repeat = max(repeat.values(), default=1.0)
        top_popularity = max(self.popularity.values())
        return [
            cooc[j] / top
            + self.repeat_weight * repeat.get(j, 0.0) / top_repeat
            + self.popularity_weight * self.popularity.get(j, 0.0) / top_popularity
            for j in items
        ]


def by_id(model, users):
    """Scores with the columns in item-id order (two models number the items in their order of arrival)."""
    ids = model.items.ids
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return model.score(users)[:, order], [ids[k] for k in order]


def test_the_scores_follow_the_definition_on_a_random_stream():
    events = random_stream(600, n_users=25, n_items=40)
    model = ItemCooccurrence(window=5)
    for start in range(0, len(events), 50):
        model.observe(batch(*events[start : start + 50]))
    reference = Reference(events, window=5)
    users = [f"u{u}" for u in range(25)]
    scores, items = by_id(model, users)
    expected = torch.tensor([reference.scores(u, items) for u in users], dtype=torch.float32)
    torch.testing.assert_close(scores, expected)


# -- order-independence --------------------------------------------------------------------------------------
def interleaved(events, seed):
    """The same events with each user's own in order but different users' interleaved at random, as partitions
    keyed by user arrive at a worker that follows them all."""
    generator = random.Random(seed)
    queues = {}
    for event in events:
        queues.setdefault(event[0], []).append(event)
    users, out = list(queues), []
    while users:
        user = generator.choice(users)
        out.append(queues[user].pop(0))
        if not queues[user]:
            users.remove(user)
    return out


def observed(events, sizes, seed=0):
    model = ItemCooccurrence(window=6, max_neighbours=5)
    generator, start = random.Random(seed), 0
    while start < len(events):
        size = generator.choice(sizes)
        model.observe(batch(*events[start : start + size]))
        start += size
    return model


def assert_same_state(a, b):
    users = sorted(set(a.users.ids) | {"stranger"})
    scores_a, items_a = by_id(a, users)
    scores_b, items_b = by_id(b, users)
    assert items_a == items_b
    assert torch.equal(scores_a, scores_b)  # bit for bit
    assert [[r["item_id"] for r in row] for row in a.recommend(users, 10)] == [
        [r["item_id"] for r in row] for row in b.recommend(users, 10)
    ]
    ids_a, ids_b = a.items.ids, b.items.ids
    assert {(ids_a[int(k) >> 32], ids_a[int(k) & 0xFFFFFFFF]): int(w) for k, w in _entries(a)} == {
        (ids_b[int(k) >> 32], ids_b[int(k) & 0xFFFFFFFF]): int(w) for k, w in _entries(b)
    }
    assert {ids_a[k]: int(p) for k, p in enumerate(a.popularity)} == {
        ids_b[k]: int(p) for k, p in enumerate(b.popularity)
    }


def _entries(model):
    live = model.cooc.weight > 0
    return zip(model.cooc.keys[live].tolist(), model.cooc.weight[live].tolist())


def test_any_interleaving_of_users_and_any_batching_give_bit_identical_scores():
    """One worker reads the partitions one way, three workers' feeds another: the same events, each user's in
    order, different users' interleaved and batched differently (hubs fill lists past max_neighbours, times tie)."""
    events = random_stream(3_000, n_users=60, n_items=80, seed=3)
    one = observed(interleaved(events, 1), sizes=[1, 7, 50, 200], seed=1)
    other = observed(interleaved(events, 2), sizes=[3, 30, 500], seed=2)
    assert max(len(one.cooc.neighbours(k)) for k in range(len(one.items))) > one.max_neighbours
    assert_same_state(one, other)


def test_replays_and_duplicates_change_nothing():
    events = random_stream(1_500, n_users=40, n_items=50, seed=4)
    once = observed(events, sizes=[100])
    generator = random.Random(5)
    replayed = events[:800] + events[200:800] + events[800:] + generator.sample(events, 300)  # a rewind, then strays
    again = observed(sorted(replayed, key=lambda e: e[3]), sizes=[1, 64, 333], seed=6)
    assert_same_state(once, again)


def test_events_out_of_time_order_across_users_give_the_same_state():
    events = random_stream(1_000, n_users=30, n_items=40, seed=7)
    shuffled = list(events)
    random.Random(8).shuffle(shuffled)  # not even each user's own in order
    assert_same_state(observed(events, sizes=[50]), observed(shuffled, sizes=[1, 17, 120]))


def test_a_warm_start_from_the_edges_equals_streaming():
    events = random_stream(2_000, n_users=50, n_items=60, seed=9)
    streamed = observed(events, sizes=[1, 25, 200])
    edges = edges_of(events)
    random.Random(10).shuffle(edges)  # the graph store returns them in no particular order
    rebuilt = ItemCooccurrence(window=6, max_neighbours=5)
    users, items, types, ts = zip(*edges)
    rebuilt.rebuild_from_edges(users, items, types, ts)
    assert_same_state(streamed, rebuilt)


def test_popularity_stays_exact_across_moves_of_its_reference_time():
    """Events over 40 half-lives (the reference moves five times): streamed in small batches or rebuilt at once,
    the fixed-point sums are equal, and the newest users count most."""
    half_life_s = 60.0
    events = [(f"u{k}", f"i{k % 5}", "view", 6_000 * k) for k in range(400)]  # 400 x 6 s = 40 minutes
    streamed = ItemCooccurrence(popularity_half_life_s=half_life_s)
    for start in range(0, len(events), 9):
        streamed.observe(batch(*events[start : start + 9]))
    rebuilt = ItemCooccurrence(popularity_half_life_s=half_life_s)
    rebuilt.observe(batch(*reversed(events)))
    assert torch.equal(streamed.popularity, rebuilt.popularity[[rebuilt.items.get(f"i{k}") for k in range(5)]])
    newest = max(ts for *_, ts in events)
    expected = [
        sum(2.0 ** (-(newest - ts) / (half_life_s * 1000)) for _, i, _, ts in events if i == f"i{k}") for k in range(5)
    ]
    got = (
        streamed.popularity.double()
        * 2.0 ** ((streamed.reference_ms - newest) / (half_life_s * 1000))
        / 2.0**FIXED_POINT_BITS
    ).tolist()
    assert got == pytest.approx(expected, rel=1e-6)
    assert streamed.recommend(["newcomer"], k=1)[0][0]["item_id"] == "i4"  # the newest event's item


# -- the bounded reads ---------------------------------------------------------------------------------------
def test_scores_read_each_items_heaviest_neighbours_ties_by_tie_key():
    model = ItemCooccurrence(max_neighbours=2, repeat_weight=0.0, popularity_weight=0.0)
    model.observe(
        batch(
            ("a", "hub", "purchase", 1),
            ("a", "x", "purchase", 2),  # hub-x weighs 3
            ("b", "hub", "view", 3),
            ("b", "y", "view", 4),  # hub-y 1 + 1
            ("c", "hub", "view", 5),
            ("c", "y", "view", 6),
            ("d", "hub", "view", 7),
            ("d", "z", "view", 8),  # hub-z 1
            ("e", "hub", "view", 7),
            ("e", "w", "view", 8),  # hub-w 1
        )
    )
    hub = model.items.get("hub")
    assert {model.items.id_of(j): w for j, w in model.cooc.neighbours(hub).items()} == {"x": 3, "y": 2, "z": 1, "w": 1}
    model.observe(batch(("q", "hub", "view", 9)))
    scores = model.score(["q"])[0]
    read = {model.items.id_of(j) for j in torch.nonzero(scores > 0).view(-1).tolist()}
    assert read == {"x", "y"}  # the two heaviest (z and w, lighter, are not read)
    model = ItemCooccurrence(max_neighbours=1, repeat_weight=0.0, popularity_weight=0.0)
    model.observe(batch(("d", "hub", "view", 7), ("d", "z", "view", 8), ("e", "hub", "view", 7), ("e", "w", "view", 8)))
    model.observe(batch(("q", "hub", "view", 9)))
    scores = model.score(["q"])[0]
    first = min(["z", "w"], key=tie_key)  # a tie: the smaller tie key is read
    assert {model.items.id_of(j) for j in torch.nonzero(scores > 0).view(-1).tolist()} == {first}


def test_co_occurrence_entries_are_bounded_by_the_recent_sets():
    events = random_stream(5_000, n_users=40, n_items=400, seed=11)
    model = observed(events, sizes=[200])
    window = model.window
    assert len(model.cooc) <= 40 * window * (window - 1)
    # a user's pairs that left the recent set no longer count: after 200 new items, none of the old remain
    model.observe(batch(*[("u0", f"new{k}", "view", 10**9 + k) for k in range(200)]))
    items, _ = model._recent(torch.tensor([model.users.get("u0")]))
    assert {model.items.id_of(i) for i in items[0].tolist()} <= {f"new{k}" for k in range(200)}


@pytest.mark.slow  # a scale test: 200k events over 100k items
def test_a_large_stream_stays_within_its_bound():
    """SYNTHETIC: 200k events, 20k users, 100k items with a Zipf-like popularity, in batches of 10k, then a warm
    start from its edges: the same entries, within users x window x (window - 1)."""
    n_events, n_users, n_items = 200_000, 20_000, 100_000
    generator = torch.Generator().manual_seed(0)
    popularity = torch.arange(1, n_items + 1, dtype=torch.float64) ** -1.1
    items = torch.multinomial(popularity, n_events, replacement=True, generator=generator).tolist()
    users = torch.randint(n_users, (n_events,), generator=generator).tolist()
    events = [(f"u{u}", f"i{i}", "view", 1_000 * k) for k, (u, i) in enumerate(zip(users, items))]
    model = ItemCooccurrence(window=5)
    for start in range(0, n_events, 10_000):
        model.observe(batch(*events[start : start + 10_000]))
    assert len(model.cooc) <= n_users * 5 * 4
    print(f"tensor memory {model.tensor_bytes / 2**20:.1f} MiB, {len(model.cooc):,} co-occurrence entries")
    rebuilt = ItemCooccurrence(window=5)
    rebuilt.rebuild_from_edges(*zip(*edges_of(events)))
    assert len(rebuilt.cooc) == len(model.cooc)
    users = [f"u{u}" for u in range(64)]
    assert torch.equal(by_id(model, users)[0], by_id(rebuilt, users)[0])
    assert math.isfinite(float(model.score(users).sum()))
