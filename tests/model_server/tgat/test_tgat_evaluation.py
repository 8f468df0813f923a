"""The eval adapter (model_server/tgat/evaluation.py) and the batch sizes it hands the model: the harness's test
batch size is the validation pass's, the training steps keep their own."""
from tgat_test_helpers import one_thread  # noqa: F401 (fixture)
from model_server.contract import InteractionBatch
from model_server.evaluation import registry
from model_server.tgat import build_streamrec


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
    model = build_streamrec({"dim": 8, "heads": 1, "k": 3},
                            {"epochs": 1, "batch_size": 8, "validation_batch_size": validation_batch_size,
                             "progress": False})
    model.fit(history, validation)
    return model.fit_log[0]["val_mrr"]


def test_the_validation_pass_ranks_in_its_own_batches_not_the_training_steps():
    per_event, one_batch = _validation_mrr(1), _validation_mrr(100)
    # per event every second event is the user's newest item, which the chosen own-recency weight ranks first
    assert per_event >= 0.5 > one_batch


def test_the_adapter_trains_in_steps_of_train_batch_size_and_validates_in_test_batches():
    context = registry.ModelContext("synthetic", n_users=4, n_items=6, batch_size=1, train_batch_size=64,
                                    progress=False)
    model = registry.build("streamrec", context)
    assert (model.train_config.batch_size, model.train_config.validation_batch_size) == (64, 1)
