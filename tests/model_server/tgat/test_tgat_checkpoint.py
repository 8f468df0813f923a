"""Checkpoints round-trip to identical scores; training is deterministic under a seed; static_gat stays static."""

import torch

from tgat_test_helpers import graph_store_edges, item_texts, one_thread, tgat_events  # noqa: F401 (fixtures)
from model_server.contract import InteractionBatch
from model_server.tgat import TGATConfig, TrainConfig, build_static_gat, build_streamrec, load_recommender
from model_server.tgat.model import load_weights


def _fitted(data, build=build_streamrec, n=1500):
    rec = build(
        TGATConfig(dim=16, k=5), TrainConfig(epochs=2, batch_size=100, progress=False), device="cpu", text=False, seed=3
    )
    rec.observe_items(item_texts(data))
    stream = InteractionBatch(data.users, data.items, data.types, data.ts)
    rec.fit(stream.slice(0, int(n * 0.8)), stream.slice(int(n * 0.8), n))
    return rec, stream


def test_save_load_gives_identical_scores_and_version(tgat_events, tmp_path):
    rec, stream = _fitted(tgat_events)
    users = list(dict.fromkeys(stream.users[:1500]))[:50]
    before = rec.score(users)
    rec.save(tmp_path / "ck", {"note": "test"})
    loaded = load_recommender(tmp_path / "ck", device="cpu", text=False)
    assert loaded.model_version == rec.model_version and loaded.model_version.startswith("tgat-")
    assert torch.equal(loaded.score(users), before)
    assert loaded.recommend(users[:3], 5) == rec.recommend(users[:3], 5)
    for chosen in ("popularity_weight", "new_user_popularity_weight"):  # chosen on validation, saved with the weights
        assert torch.equal(getattr(loaded.model, chosen), getattr(rec.model, chosen))

    # serving warm start: weights only, neighbour state rebuilt from the graph store's edges
    rec.save(tmp_path / "weights", include_state=False)
    warm = load_recommender(tmp_path / "weights", device="cpu", text=False)
    warm.rebuild_from_edges(*graph_store_edges(stream.slice(0, 1500)))
    assert torch.equal(warm.score(users), before)

    # both keep streaming identically
    for model in (rec, loaded):
        model.observe(stream.slice(1500, 1700))
    assert torch.equal(loaded.score(users), rec.score(users))


def test_training_is_deterministic_under_a_seed(tgat_events):
    first, _ = _fitted(tgat_events, n=600)
    second, _ = _fitted(tgat_events, n=600)
    assert first.model_version == second.model_version


def test_static_gat_ignores_events_after_fit(tgat_events):
    rec, stream = _fitted(tgat_events, build=build_static_gat, n=600)
    assert rec.name == "static_gat"
    users = list(dict.fromkeys(stream.users[:600]))[:20]
    before = rec.score(users)
    rec.observe(stream.slice(600, 1200))
    after = rec.score(users)
    assert after.shape[1] >= before.shape[1]
    assert torch.equal(after[:, : before.shape[1]], before)


def test_weights_from_before_the_popularity_blend_load_with_the_blend_off(tgat_events):
    rec, _ = _fitted(tgat_events, n=600)
    old = {k: v for k, v in rec.model.state_dict().items() if "popularity_weight" not in k}
    load_weights(rec.model, old)
    assert float(rec.model.popularity_weight) == 0.0 and float(rec.model.new_user_popularity_weight) == 0.0
