"""The live worker refreshes lists before the graph store says which events were new (streamrec/runtime/worker.py), which
is only sound if observing an event a second time changes nothing."""

import random

import torch

from model_server.contract import InteractionBatch
from model_server.tgat import build_streamrec


def synthetic(n: int, seed: int) -> InteractionBatch:
    rng = random.Random(seed)
    users = [f"u{rng.randrange(40)}" for _ in range(n)]
    items = [f"i{min(rng.randrange(60), rng.randrange(60))}" for _ in range(n)]
    types = [rng.choice(["view", "view", "click", "add_to_cart", "purchase"]) for _ in range(n)]
    return InteractionBatch(users, items, types, [1_600_000_000_000 + 1000 * k for k in range(n)])


def test_observing_a_batch_twice_equals_observing_it_once():
    torch.set_num_threads(1)
    history, stream = synthetic(600, 1), synthetic(300, 2)
    stream.ts = [t + 10_000_000 for t in stream.ts]
    models = []
    for repeats in (1, 2):
        model = build_streamrec(
            {"dim": 16, "heads": 1, "k": 5},
            {"epochs": 1, "negatives": 16, "progress": False},
            seed=3,
            text=False,
            sweep_per_observe=None,
        )
        model.fit(history)
        for start in range(0, len(stream), 50):
            chunk = stream.slice(start, start + 50)
            for _ in range(repeats):
                model.observe(chunk)
        models.append(model)
    once, twice = models
    users = sorted(set(stream.users))
    assert once.observe_is_idempotent
    assert torch.allclose(once.score(users), twice.score(users), atol=1e-5)
    assert torch.allclose(once.full_recompute(), twice.full_recompute(), atol=1e-5)
