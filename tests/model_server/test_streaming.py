"""The one split and the one streaming loop (model_server/streaming.py), and that every streaming ranking of
training, the baselines and the evaluation goes through that loop."""

import pytest
import torch

from model_server import ranking, streaming
from model_server.contract import InteractionBatch
from model_server.ids import IdMap


def timed(users, items):
    return InteractionBatch(list(users), list(items), ["view"] * len(users), list(range(len(users))))


def cyclic_stream(n_events=100, n_users=7, n_items=13):
    """Every user walks through the items in a fixed cycle, so the next item follows from the last one."""
    users = [f"u{k % n_users}" for k in range(n_events)]
    items = [f"i{(3 * k + k % n_users) % n_items}" for k in range(n_events)]
    return InteractionBatch(users, items, ["view"] * n_events, [1_000_000 + 1000 * k for k in range(n_events)])


# -- the split ---------------------------------------------------------------------------------------------
def test_split_is_chronological_70_15_15():
    train, validation, test = streaming.split_stream(cyclic_stream(100))
    assert (len(train), len(validation), len(test)) == (70, 15, 15)
    assert max(train.ts) <= min(validation.ts) and max(validation.ts) <= min(test.ts)
    with pytest.raises(ValueError):
        streaming.split_stream(InteractionBatch(["a", "b"], ["x", "y"], ["view"] * 2, [2, 1]))


def test_split_positions_are_rounded_not_truncated():
    # 0.7 * 33 = 23.1 and 0.85 * 33 = 28.05; 0.7 * 37 = 25.9 rounds up where int() would cut to 25
    assert streaming.chronological_split(33) == (23, 28)
    assert streaming.chronological_split(37) == (26, 31)


def test_the_smallest_splittable_stream_leaves_every_part_an_event():
    n = streaming.smallest_splittable()
    train_end, validation_end = streaming.chronological_split(n)
    assert 0 < train_end < validation_end < n
    train_end, validation_end = streaming.chronological_split(n - 1)
    assert not 0 < train_end < validation_end < n - 1
    with pytest.raises(ValueError, match="positive"):
        streaming.smallest_splittable((0.85, 0.15, 0.0))


# -- the loop ----------------------------------------------------------------------------------------------
def test_each_batch_is_ranked_before_it_is_observed():
    calls = []
    stream = timed(["a", "b", "c", "d", "e"], ["x", "y", "z", "x", "y"])
    streaming.rank_then_observe(
        stream,
        2,
        IdMap(),
        set(),
        lambda batch: calls.append(("rank", batch.index)),
        lambda batch: calls.append(("observe", len(batch))),
    )
    assert calls == [("rank", 0), ("observe", 2), ("rank", 1), ("observe", 2), ("rank", 2), ("observe", 1)]


def test_a_model_that_knows_the_target_only_after_observing_it_gets_no_credit():
    """Scores each user's most recent item first: right only if the loop had observed the batch already."""
    last_item: dict[str, str] = {}
    catalogue = IdMap(["x", "y"])
    reciprocal = []

    def rank(batch):
        scores = torch.zeros(len(batch.users), batch.catalogue_size)
        for row, user in enumerate(batch.users):
            if user in last_item:
                scores[row, catalogue.get(last_item[user])] = 1.0
        reciprocal.extend(ranking.reciprocal_rank(*ranking.rank_counts(scores[batch.rows], batch.targets)).tolist())

    def observe(batch):
        last_item.update(zip(batch.users, batch.items))

    # a: x then y; b: y then x; each event's item differs from its user's previous one
    streaming.rank_then_observe(timed(["a", "b", "a", "b"], ["x", "y", "y", "x"]), 2, catalogue, set(), rank, observe)
    assert reciprocal == [pytest.approx(2 / 3)] * 2 + [0.5, 0.5]  # all ties, then the wrong item first


def test_a_batch_carries_its_users_rows_targets_and_new_users():
    seen: list = []
    catalogue, known_users = IdMap(["x"]), {"a"}
    stream = timed(["a", "b", "a", "c", "b"], ["x", "z", "z", "x", "z"])
    streaming.rank_then_observe(stream, 3, catalogue, known_users, seen.append, lambda batch: None)
    first, second = seen
    assert (first.index, first.start, first.stop, second.start, second.stop) == (0, 0, 3, 3, 5)
    assert first.users == ["a", "b"] and first.rows.tolist() == [0, 1, 0]
    assert first.targets.tolist() == [0, -1, -1]  # z is never seen before the batch, twice a miss
    assert first.new_user.tolist() == [False, True, False] and first.catalogue_size == 1
    assert second.users == ["c", "b"] and second.targets.tolist() == [0, 1]  # z joined after the first batch
    assert second.new_user.tolist() == [True, False] and second.catalogue_size == 2
    assert catalogue.ids == ["x", "z"] and known_users == {"a", "b", "c"}  # advanced in place


# -- every streaming ranking goes through the loop ------------------------------------------------------------
def counting(monkeypatch, module) -> list:
    """Counts the calls of the loop as `module` sees it (each caller imports the one function)."""
    calls = []
    loop = streaming.rank_then_observe
    assert module.rank_then_observe is loop  # the caller's loop is the one loop

    def counted(*args, **kwargs):
        calls.append(len(args[0]))
        return loop(*args, **kwargs)

    monkeypatch.setattr(module, "rank_then_observe", counted)
    return calls


def test_the_heuristics_choose_on_the_loop(monkeypatch):
    from model_server.baselines import recency_popularity, selection
    from model_server.baselines.popularity import RecentPopularity

    calls = counting(monkeypatch, selection)
    train, validation, _ = streaming.split_stream(cyclic_stream(200))
    recency_popularity.RecencyPopularity().fit(train, validation)
    RecentPopularity().fit(train, validation)
    assert calls == [len(validation)] * (1 + 1)  # one pass for every variant, one for every half-life's probe


def test_the_evaluation_ranks_the_test_on_the_loop(monkeypatch):
    from model_server.baselines.popularity import Popularity
    from model_server.evaluation import protocol

    calls = counting(monkeypatch, protocol)
    train, validation, test = streaming.split_stream(cyclic_stream(200))
    protocol.run_stream(Popularity(), train, validation, test, batch_size=10, progress=False)
    assert calls == [len(test)]


def test_sasrec_validates_on_the_loop(monkeypatch):
    from model_server.baselines import sasrec

    calls = counting(monkeypatch, sasrec)
    train, validation, _ = streaming.split_stream(cyclic_stream(200))
    sasrec.SASRec(dim=8, max_len=4, blocks=1, epochs=2, patience=5, progress=False).fit(train, validation)
    assert calls == [len(validation)] * 2


def test_lightgcn_validates_on_the_loop(monkeypatch):
    from model_server.baselines import lightgcn

    calls = counting(monkeypatch, lightgcn)
    train, validation, _ = streaming.split_stream(cyclic_stream(200))
    lightgcn.LightGCN(dim=8, layers=2, epochs=2, patience=5, progress=False).fit(train, validation)
    assert calls == [len(validation)] * 2


def test_tgn_validates_on_the_loop(monkeypatch):
    pytest.importorskip("torch_geometric")
    from model_server.baselines import tgn

    calls = counting(monkeypatch, tgn)
    stream = cyclic_stream(200)
    train, validation, _ = streaming.split_stream(stream)
    model = tgn.TGN(len(set(stream.users)), len(set(stream.items)), epochs=2, patience=5, dim=8, progress=False)
    model.fit(train, validation)
    assert calls == [len(validation)] * 2


def test_the_temporal_gat_validates_on_the_loop(monkeypatch):
    from model_server.tgat import TGATConfig, TrainConfig, build_streamrec
    from model_server.tgat import train as tgat_train

    calls = counting(monkeypatch, tgat_train)
    train, validation, _ = streaming.split_stream(cyclic_stream(200))
    model = build_streamrec(
        TGATConfig(dim=8, heads=1, layers=1, k=4), TrainConfig(epochs=2, patience=5, progress=False), text=False
    )
    model.fit(train, validation)
    assert calls == [len(validation)] * 2
    assert 0.0 <= model.train_report["validation"]["mrr"] <= 1.0
