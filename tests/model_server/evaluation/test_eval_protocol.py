"""The streaming protocol: no model ever sees an event before the event is scored (the split and the loop
itself: tests/model_server/test_streaming.py)."""

from typing import Sequence

import pytest
import torch

from model_server.contract import InteractionBatch, Recommender
from model_server import streaming
from model_server.evaluation import protocol


def synthetic_stream(n_events=100, n_users=7, n_items=13):
    """Every user walks through the items in a fixed cycle, so the next item follows from the last one."""
    users, items, types, ts = [], [], [], []
    for k in range(n_events):
        user = k % n_users
        users.append(f"u{user}")
        items.append(f"i{(3 * k + user) % n_items}")
        types.append("purchase" if k % 5 == 0 else "view")
        ts.append(1_000_000 + 1000 * k)
    return InteractionBatch(users, items, types, ts)


class Spy(Recommender):
    """Records how many events it had observed at each score call."""

    name = "spy"

    def __init__(self):
        super().__init__()
        self.seen = []
        self.seen_at_score = []

    def _observe(self, batch, users, items):
        self.seen.extend(zip(batch.users, batch.items, batch.ts))

    def score(self, users: Sequence[str]) -> torch.Tensor:
        self.seen_at_score.append(len(self.seen))
        return torch.zeros(len(users), len(self.items))


class Oracle(Recommender):
    """Cheats if it can: scores the item each user interacted with most recently. If the harness observed
    the batch before ranking it, this would put the true item first for every user's last event."""

    name = "oracle"

    def __init__(self):
        super().__init__()
        self.last = {}

    def _observe(self, batch, users, items):
        for u, i in zip(users.tolist(), items.tolist()):
            self.last[u] = i

    def score(self, users):
        scores = torch.zeros(len(users), len(self.items))
        for row, u in enumerate(self.users.lookup(users)):
            if u in self.last:
                scores[row, self.last[u]] = 1.0
        return scores


def test_no_event_is_observed_before_it_is_scored():
    stream = synthetic_stream(400)
    train, validation, test = streaming.split_stream(stream)
    spy = Spy()
    protocol.run_stream(spy, train, validation, test, batch_size=20, progress=False)
    before_test = len(train) + len(validation)
    # one score call per batch (all users fit in one chunk); at each, exactly the events before the batch
    assert spy.seen_at_score == [before_test + 20 * b for b in range(len(test) // 20)]
    # and nothing of the test was observed out of order or twice
    assert spy.seen == list(zip(stream.users, stream.items, stream.ts))


def test_an_oracle_of_the_batch_gains_nothing():
    """Each test event's item differs from the user's previous item, so an oracle that ranks the user's most
    recent item first is always wrong, unless the batch leaked into its state before scoring."""
    stream = synthetic_stream(400)
    train, validation, test = streaming.split_stream(stream)
    result = protocol.run_stream(Oracle(), train, validation, test, batch_size=20, progress=False)
    summary = protocol.summarise_result(result)
    assert summary["overall"]["recall@10"] < 0.9  # a leak would give 1.0: every user's last event ranked first
    assert (result.greater[~result.new_item] >= 1).all()  # the oracle's item is always above the true one


def test_new_items_are_misses_and_catalogue_is_frozen_per_batch():
    train = InteractionBatch(["a", "b"], ["x", "y"], ["view"] * 2, [1, 2])
    validation = InteractionBatch(["a"], ["x"], ["view"], [3])
    # batch 1: z is new (a miss) and appears twice in the same batch; batch 2: z is known
    test = InteractionBatch(["a", "b", "a"], ["z", "z", "z"], ["view"] * 3, [4, 5, 6])
    result = protocol.run_stream(Oracle(), train, validation, test, batch_size=2, progress=False)
    assert result.new_item.tolist() == [True, True, False]
    assert result.greater.tolist()[:2] == [-1, -1]
    assert int(result.greater[2]) == 0  # a's last observed item is z: ranked first, legitimately
    assert result.new_user.tolist() == [False, False, False]
    summary = protocol.summarise_result(result)
    assert summary["by_item"]["new"]["events"] == 2 and summary["by_item"]["new"]["mrr"] == 0.0
    assert summary["overall"]["mrr"] == pytest.approx(1 / 3)


def _events_csv(tmp_path):
    """600 synthetic events (20 users, 30 items) as an --events-csv file."""
    stream = synthetic_stream(600, n_users=20, n_items=30)
    csv = tmp_path / "mine.csv"
    csv.write_text(
        "user_id,item_id,type,ts\n"
        + "".join(f"{u},{i},{t},{ts}\n" for u, i, t, ts in zip(stream.users, stream.items, stream.types, stream.ts))
    )
    return csv


def test_eval_command_writes_the_reports(tmp_path, monkeypatch):
    import json

    from streamrec.tools.cli import main

    csv = _events_csv(tmp_path)
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    code = main(
        ["eval", "--events-csv", str(csv), "--models", "pop,edgebank,itemknn", "--out", str(out), "--no-progress"]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["models"]) == {"pop", "edgebank", "itemknn"}
    assert report["dataset"]["test"] == 90 and report["dataset"]["checksums"]
    assert report["models"]["pop"]["overall"]["events"] == 90
    assert "| edgebank |" in (out / "report.md").read_text()
    by_own_item = report["models"]["edgebank"]["by_own_item"]
    assert (
        sum(part["events"] for part in by_own_item.values())
        == report["models"]["edgebank"]["by_user"]["returning"]["events"]
    )
    assert "returning: their newest item" in (out / "report.md").read_text()
    assert (
        report["config"]["command"] == f"streamrec eval --events-csv {csv} --models pop,edgebank,itemknn --out {out} "
        "--no-progress"
    )  # what ran, not the test runner's argv
    assert f"Command: `{report['config']['command']}`" in (out / "report.md").read_text()
    assert (out / "metrics_by_model.png").stat().st_size > 0 and (out / "mrr_over_time.png").stat().st_size > 0


def test_unavailable_model_is_reported_not_fatal():
    from model_server.evaluation import registry

    registry.register("not_built_yet", "model_server.does_not_exist:build")
    try:
        with pytest.raises(registry.ModelNotAvailable, match="not available yet"):
            registry.resolve("not_built_yet")
    finally:
        registry.MODELS.pop("not_built_yet")


def test_eval_over_several_seeds_reports_mean_and_spread(tmp_path, monkeypatch):
    import json

    from streamrec.tools.cli import main

    csv = _events_csv(tmp_path)
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "--events-csv",
                str(csv),
                "--models",
                "pop",
                "--seeds",
                "0,1,2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    pop = report["models"]["pop"]
    assert report["config"]["seeds"] == [0, 1, 2] and set(pop["seeds"]) == {"0", "1", "2"}
    assert pop["across_seeds"]["mrr"] == {"mean": pytest.approx(pop["overall"]["mrr"]), "std": 0.0, "n": 3}
    assert "## Across 3 seeds (mean ± sample standard deviation, test part)" in (out / "report.md").read_text()


def test_across_seeds_is_the_mean_and_sample_deviation():
    from model_server.evaluation.report import across_seeds

    def run(mrr):
        return {"overall": {"mrr": mrr, "ndcg@20": mrr, "recall@20": mrr, "recall@10": mrr}, "wall_s": 1.0}

    summary = across_seeds({0: run(0.2), 1: run(0.4), 2: run(0.6)})
    assert summary["overall"]["mrr"] == 0.2  # the first seed's figures carry the breakdowns
    assert summary["across_seeds"]["mrr"]["mean"] == pytest.approx(0.4)
    assert summary["across_seeds"]["mrr"]["std"] == pytest.approx(0.2)  # n - 1 in the denominator
    assert across_seeds({0: run(0.2)}) == run(0.2)
    assert across_seeds({0: run(0.2), 1: {"error": "gone"}}) == {"error": "gone"}
