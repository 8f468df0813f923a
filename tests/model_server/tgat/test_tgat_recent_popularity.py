"""An item's recent global popularity: the time-decayed count of its distinct users kept in graph state
(graph_state.py), equal to a direct computation from the pairs' newest times, unchanged by re-observing, rebuilt
exactly from the graph store's edges, and its chosen half-lives saved with the checkpoint."""

import json
import random

import pytest
import torch

from tgat_test_helpers import graph_store_edges, item_texts, one_thread, tgat_events  # noqa: F401 (fixtures)
from model_server.contract import InteractionBatch
from model_server.digest import METADATA_NAME, file_sha256
from model_server.pairs import LOW, SHIFT
from model_server.tgat import TGATConfig, TrainConfig, build_streamrec, load_recommender
from model_server.tgat.graph_state import TemporalGraph
from model_server.tgat.train import _blend_candidates


def _direct(pairs: dict, item_node: int, t_now: int, half_life: int) -> float:
    return sum(2.0 ** (-(t_now - ts) / half_life) for (u, i), ts in pairs.items() if i == item_node)


def _graph(n_users=30, n_items=20, half_lives=(50, 5_000, 500_000)):
    graph = TemporalGraph(k=3, text_dim=4, device=torch.device("cpu"))
    graph.sync([f"u{k}" for k in range(n_users)], [f"i{k}" for k in range(n_items)])
    graph.ensure_half_lives(half_lives)
    return graph


def _check_against_direct(graph: TemporalGraph, newest: dict) -> None:
    pairs = {(int(k) >> SHIFT, int(k) & LOW): int(t) for k, t in zip(graph.seen.tolist(), graph.seen_ts.tolist())}
    assert pairs == newest  # every pair, with the max of its events' times
    t_now = int(graph.newest_time())
    items = graph.item_node
    for h in graph.half_lives.tolist():
        got = graph.recent_popularity(items, h)
        want = torch.tensor([_direct(pairs, int(i), t_now, h) for i in items], dtype=torch.float64)
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12), h


def test_decayed_counts_equal_a_direct_computation_as_times_move_and_the_reference_moves():
    rng = random.Random(5)
    graph = _graph()
    newest, t, refs = {}, 1_600_000_000_000, set()
    for step in range(40):
        n = rng.randrange(1, 30)
        users = torch.tensor([rng.randrange(30) for _ in range(n)])
        items = torch.tensor([min(rng.randrange(20), rng.randrange(20)) for _ in range(n)])
        # mostly small steps, some jumps of many shortest half-lives (the reference must move), some events older
        # than the newest (a pair's time may stay)
        t += rng.choice([0, 7, 40, 300, 20_000, 3_000_000])
        ts = torch.tensor([t - rng.choice([0, 0, 0, 25, 1000]) for _ in range(n)])
        graph.insert(users, items, torch.zeros(n, dtype=torch.long), ts)
        refs.add(graph.t_ref)
        for u, i, s in zip(users.tolist(), items.tolist(), ts.tolist()):
            key = (int(graph.user_node[u]), int(graph.item_node[i]))
            newest[key] = max(newest.get(key, s), s)
        _check_against_direct(graph, newest)
    assert len(refs) > 3  # t_ref moved forward several times
    moved = [k for k in newest if newest[k] != min(newest.values())]
    assert moved
    # the degree is still the all-time count of distinct users
    for i in graph.item_node.tolist():
        assert int(graph.degree[i]) == sum(1 for (_, item) in newest if item == i)


def test_re_observing_events_changes_nothing_and_a_rebuild_in_any_order_gives_the_same_counts():
    rng = random.Random(2)
    graph = _graph()
    events = [
        (rng.randrange(30), rng.randrange(20), rng.randrange(3), 1_600_000_000_000 + rng.randrange(10_000_000))
        for _ in range(400)
    ]
    events.sort(key=lambda e: e[3])
    batches = [events[s : s + 50] for s in range(0, len(events), 50)]
    for batch in batches:
        u, i, ty, ts = (torch.tensor(col) for col in zip(*batch))
        graph.insert(u, i, ty, ts)
        state = (graph.seen.clone(), graph.seen_ts.clone(), graph.decayed.clone(), graph.t_ref, graph.degree.clone())
        graph.insert(u, i, ty, ts)  # the same events again
        assert torch.equal(graph.seen, state[0]) and torch.equal(graph.seen_ts, state[1])
        assert torch.equal(graph.decayed, state[2]) and graph.t_ref == state[3] and torch.equal(graph.degree, state[4])

    # the graph store's edges (one per user, item, type with its newest time), shuffled, in chunks
    edges = {}
    for u, i, ty, ts in events:
        edges[(u, i, ty)] = max(edges.get((u, i, ty), ts), ts)
    rows = list(edges.items())
    rng.shuffle(rows)
    rebuilt = _graph()
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        rebuilt.insert(
            torch.tensor([k[0] for k, _ in chunk]),
            torch.tensor([k[1] for k, _ in chunk]),
            torch.tensor([k[2] for k, _ in chunk]),
            torch.tensor([t for _, t in chunk]),
        )
    assert torch.equal(rebuilt.seen, graph.seen) and torch.equal(rebuilt.seen_ts, graph.seen_ts)
    for h in graph.half_lives.tolist():
        assert torch.allclose(
            rebuilt.recent_popularity(graph.item_node, h),
            graph.recent_popularity(graph.item_node, h),
            rtol=1e-9,
            atol=1e-12,
        )
    # and a graph whose state was loaded (decayed counts recomputed from seen_ts)
    loaded = _graph()
    loaded.load_state_dict(graph.state_dict())
    for h in graph.half_lives.tolist():
        assert torch.allclose(
            loaded.recent_popularity(graph.item_node, h),
            graph.recent_popularity(graph.item_node, h),
            rtol=1e-9,
            atol=1e-12,
        )


def test_candidates_keep_the_all_time_count_first_and_skip_half_lives_of_a_zero_weight():
    blends = TrainConfig(
        popularity_weights=(0.0, 1.0), own_recency_weights=(0.0, 2.0), new_user_popularity_weights=(0.0, 1.0)
    ).blends((10, 100))
    candidates = _blend_candidates(blends)
    assert candidates["returning"][0] == (0.0, 0.0, 0.0, 0)  # (popularity, own recency, attributes, half-life)
    assert len(candidates["returning"]) == 2 + 2 * 3  # weight 0: one count per recency weight; weight 1: every count
    assert {c[2] for c in candidates["returning"]} == {0.0}  # no item has a category or brand: the term stays off
    with_attributes = _blend_candidates(
        TrainConfig(popularity_weights=(0.0, 1.0), own_recency_weights=(0.0, 2.0), attribute_weights=(0.0, 4.0)).blends(
            (10, 100), attributes=True
        )
    )
    assert len(with_attributes["returning"]) == 2 * (2 + 2 * 3)
    assert candidates["new"] == [(0.0, 0), (1.0, 0), (1.0, 10), (1.0, 100)]
    assert TrainConfig(recent_half_life_fractions=(0.01, 1.0)).half_lives([0, 1000, 50_000]) == (500, 50_000)


@pytest.fixture(scope="module")
def fitted(tgat_events):
    torch.set_num_threads(1)
    rec = build_streamrec(
        TGATConfig(dim=16, k=5), TrainConfig(epochs=1, batch_size=100, progress=False), device="cpu", text=False, seed=4
    )
    rec.observe_items(item_texts(tgat_events))
    stream = InteractionBatch(tgat_events.users, tgat_events.items, tgat_events.types, tgat_events.ts)
    rec.fit(stream.slice(0, 960), stream.slice(960, 1200))
    return rec, stream


def _with_recent_terms(rec):
    """Whatever validation chose on these few events: serve with recent counts for both kinds of users."""
    grid = rec.train_report["half_lives_ms"]
    assert len(grid) == 4 and rec.fit_log[0].get("val_new_user_popularity_half_life") is not None
    with torch.no_grad():
        rec.model.popularity_half_life.fill_(grid[1])
        rec.model.new_user_popularity_half_life.fill_(grid[2])
        rec.model.popularity_weight.fill_(1.5)
        rec.model.new_user_popularity_weight.fill_(2.0)
    return grid


def test_streamed_state_equals_the_state_rebuilt_from_edges_and_the_half_lives_round_trip(fitted, tmp_path):
    rec, stream = fitted
    grid = _with_recent_terms(rec)
    rec.observe(stream.slice(1200, 1500))
    users = list(dict.fromkeys(stream.users[:1500]))[:40] + ["never-seen"]
    before = rec.score(users)
    # the recent counts change the scores (the all-time count would rank otherwise)
    items = rec.graph.item_node[: len(rec.items)]
    assert not torch.allclose(
        rec.model.global_popularity(rec.graph, items, new_user=True), rec.model.popularity_count(rec.graph, items, 0)
    )

    rec.save(tmp_path / "ck")
    loaded = load_recommender(tmp_path / "ck", device="cpu", text=False)
    assert int(loaded.model.popularity_half_life) == grid[1]
    assert int(loaded.model.new_user_popularity_half_life) == grid[2]
    assert torch.equal(loaded.graph.seen_ts, rec.graph.seen_ts)
    assert torch.allclose(loaded.score(users), before, atol=1e-5)

    rec.save(tmp_path / "weights", include_state=False)
    warm = load_recommender(tmp_path / "weights", device="cpu", text=False)
    warm.rebuild_from_edges(*graph_store_edges(stream.slice(0, 1500)))
    assert torch.equal(warm.graph.seen, rec.graph.seen) and torch.equal(warm.graph.seen_ts, rec.graph.seen_ts)
    for h in grid[1:3]:
        assert torch.allclose(warm.graph.recent_popularity(items, h), rec.graph.recent_popularity(items, h), rtol=1e-9)
    assert torch.allclose(warm.score(users), before, atol=1e-5)

    # both keep streaming alike
    for model in (rec, warm):
        model.observe(stream.slice(1500, 1700))
    assert torch.allclose(warm.score(users), rec.score(users), atol=1e-5)


def test_a_checkpoint_from_before_the_recent_counts_loads_and_scores_with_the_all_time_count(fitted, tmp_path):
    rec, stream = fitted
    users = list(dict.fromkeys(stream.users[:1200]))[:30] + ["never-seen"]
    path = rec.save(tmp_path / "ck")
    payload = torch.load(path, weights_only=True)
    for name in ("popularity_half_life", "new_user_popularity_half_life"):
        del payload["weights"][name]
    del payload["graph"]["seen_ts"]
    torch.save(payload, path)
    meta = json.loads((tmp_path / "ck" / METADATA_NAME).read_text())
    (tmp_path / "ck" / METADATA_NAME).write_text(json.dumps({**meta, "file_sha256": file_sha256(path)}))
    old = load_recommender(tmp_path / "ck", device="cpu", text=False)
    assert int(old.model.popularity_half_life) == 0 and int(old.model.new_user_popularity_half_life) == 0
    assert torch.equal(old.graph.seen, rec.graph.seen) and int(old.graph.seen_ts.abs().sum()) == 0
    with torch.no_grad():  # the model as it scored before: the all-time count
        rec.model.popularity_half_life.zero_()
        rec.model.new_user_popularity_half_life.zero_()
    assert torch.allclose(old.score(users), rec.score(users), atol=1e-5)
    old.observe(stream.slice(1200, 1300))  # and it keeps streaming
    assert old.score(users).shape[0] == len(users)


def test_the_validation_rank_counts_equal_the_rankings():
    from model_server import ranking
    from model_server.tgat.train import _count_into

    scores = torch.tensor([[1.0, 2.0, 2.0, 0.5], [3.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    for targets in (torch.tensor([1, 3, 2]), torch.tensor([3, 0, 0]), torch.tensor([0, 1, 3])):
        greater, equal = torch.full((3,), 99), torch.full((3,), 99)
        _count_into(scores, targets, torch.empty(scores.shape, dtype=torch.bool), greater, equal)
        want_greater, want_equal = ranking.rank_counts(scores, targets)
        assert torch.equal(greater, want_greater) and torch.equal(equal, want_equal)


def test_log_structured_pairs_read_as_one_sorted_array(monkeypatch):
    """The pairs are kept log-structured (pairs.KeyLog): a graph whose recent pairs are merged in only now and then
    reads (seen_pairs in the same order, degrees, decayed counts) exactly as one whose pairs are compacted after
    every batch."""
    import model_server.pairs as pairs_module

    monkeypatch.setattr(pairs_module, "_MIN_RECENT", 8)
    monkeypatch.setattr(pairs_module, "_RECENT_SCALE", 2)
    rng = random.Random(11)
    logged, compacted = _graph(), _graph()
    t, merges = 1_600_000_000_000, 0
    for _ in range(50):
        n = rng.randrange(1, 25)
        users = torch.tensor([rng.randrange(30) for _ in range(n)])
        items = torch.tensor([rng.randrange(20) for _ in range(n)])
        t += rng.choice([0, 40, 20_000])
        ts = torch.tensor([t - rng.choice([0, 0, 25, 1000]) for _ in range(n)])
        recent_before = logged.pairs.recent.numel()
        for graph in (logged, compacted):
            graph.insert(users, items, torch.zeros(n, dtype=torch.long), ts)
        merges += logged.pairs.recent.numel() < recent_before
        compacted.pairs.compact()
        asked = torch.cat([logged.user_node[torch.randint(0, 30, (6,))], logged.item_node[:1]])
        for got, want in zip(logged.seen_pairs(asked), compacted.seen_pairs(asked)):
            assert torch.equal(got, want)  # in the same order too
        assert torch.equal(logged.degree, compacted.degree) and torch.equal(logged.decayed, compacted.decayed)
    assert merges > 2 and logged.pairs.recent.numel() > 0  # both arrays were read
    assert torch.equal(logged.seen, compacted.seen) and torch.equal(logged.seen_ts, compacted.seen_ts)


def test_seen_pairs_among_candidates_equal_the_filtered_ranges():
    """seen_pairs(users, among), filtered to the candidates, equals seen_pairs(users) filtered, in the same order,
    whether the ranges are read whole or the (row, candidate) grid is looked up (a heavy user)."""
    rng = random.Random(2)
    graph = _graph(n_users=6, n_items=40)
    for step in range(30):
        n = rng.randrange(5, 40)
        users = torch.tensor([0 if rng.random() < 0.6 else rng.randrange(6) for _ in range(n)])  # user 0 is heavy
        items = torch.tensor([rng.randrange(40) for _ in range(n)])
        graph.insert(users, items, torch.zeros(n, dtype=torch.long), torch.full((n,), 1_000 + step))
    asked = graph.user_node[torch.tensor([0, 0, 3, 0, 5, 1])]
    all_rows, all_items = graph.seen_pairs(asked)
    for among in (graph.item_node[:3], graph.item_node[::2], graph.item_node, graph.item_node[:0]):
        keep = torch.isin(all_items, among)
        rows, items = graph.seen_pairs(asked, among)
        kept = torch.isin(items, among)  # the caller's filter
        assert torch.equal(rows[kept], all_rows[keep]) and torch.equal(items[kept], all_items[keep])
        grid = asked.numel() * among.numel() < int(graph.degree[asked].sum())
        assert bool(kept.all()) if grid else torch.equal(rows, all_rows) and torch.equal(items, all_items)
    assert asked.numel() * 3 < int(graph.degree[asked].sum())  # the first `among` took the grid's branch
