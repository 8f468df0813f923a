"""The eval adapter (model_server/tgat/evaluation.py) and the batch sizes it hands the model: the harness's test
batch size is the validation pass's, the training steps keep their own."""

import torch

from tgat_test_helpers import one_thread  # noqa: F401 (fixture)
from model_server.contract import InteractionBatch
from model_server.evaluation import registry
from model_server.tgat import build_streamrec
from model_server.tgat import train as training


def _repeat_stream(n_users: int = 12) -> tuple[InteractionBatch, InteractionBatch]:
    """History: user k touches items k and k+1. Validation: user k touches item k+2 (another user's item)
    twice in a row, so the second event repeats the user's newest item: known from the event before it when
    ranked per event, not when both fall in one batch."""
    users, items, ts = [], [], []
    for k in range(n_users):
        for item in (k, k + 1):
            users.append(f"u{k}"), items.append(f"i{item % n_users}"), ts.append(len(ts) * 1000)
    history = InteractionBatch(users, items, ["click"] * len(users), ts)
    users, items, ts = [], [], []
    for k in range(n_users):
        for _ in range(2):
            users.append(f"u{k}"), items.append(f"i{(k + 2) % n_users}"), ts.append((len(ts) + 100) * 1000)
    return history, InteractionBatch(users, items, ["click"] * len(users), ts)


def _validation_mrr(validation_batch_size: int) -> float:
    history, validation = _repeat_stream()
    model = build_streamrec(
        {"dim": 8, "heads": 1, "k": 3},
        {"epochs": 1, "batch_size": 8, "validation_batch_size": validation_batch_size, "progress": False},
    )
    model.fit(history, validation)
    chosen = model.fit_log[-1]  # epochs are compared in training batches, the weights chosen in test batches
    assert chosen["epoch"] == f"1, in test batches of {validation_batch_size}"
    return chosen["val_mrr"]


def test_the_validation_pass_ranks_in_its_own_batches_not_the_training_steps():
    per_event, one_batch = _validation_mrr(1), _validation_mrr(100)
    # per event every second event is the user's newest item, which the chosen own-recency weight ranks first
    assert per_event >= 0.5 > one_batch


def test_the_adapter_trains_in_steps_of_train_batch_size_and_validates_in_test_batches():
    context = registry.ModelContext(
        "synthetic", n_users=4, n_items=6, batch_size=1, train_batch_size=64, progress=False
    )
    model = registry.build("streamrec", context)
    assert (model.train_config.batch_size, model.train_config.validation_batch_size) == (64, 1)


def test_small_batches_rank_every_candidate_at_once_as_the_loop_does(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    draw = lambda: torch.randint(0, 4, (3, 50), generator=generator).float()  # noqa: E731 (few values: many ties)
    base, recency, shared = draw(), draw(), draw()
    popularity = {0: draw(), 7: draw()}
    candidates = [(w, r, a, h) for w in (0.0, 0.5) for r in (0.0, 2.0) for a in (0.0, 1.0) for h in (0, 7)]
    targets = torch.tensor([0, 13, 49])
    at_once = training._candidate_counts(candidates, base, targets, popularity, recency, shared)
    monkeypatch.setattr(training, "_AT_ONCE_ELEMENTS", 0)
    one_by_one = training._candidate_counts(candidates, base, targets, popularity, recency, shared)
    assert all(torch.equal(a, b) for a, b in zip(at_once, one_by_one))
    assert int(at_once[1].sum()) > 0  # ties were counted
