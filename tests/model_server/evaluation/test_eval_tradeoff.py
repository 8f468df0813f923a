"""`streamrec eval --diversity`: one fit per model, one test run per setting, the trade-off table and plot."""

import json

import pytest
import torch

from model_server.evaluation.tradeoff import CategoryCoverage, parse_strengths
from model_server.ids import IdMap
from stream.events import Item


def test_category_coverage_counts_distinct_labels_per_list_and_over_all_lists():
    items = {
        "a": Item("a", category="x"),
        "b": Item("b", category="x, y"),
        "c": Item("c", category="z"),
        "d": Item("d"),
        "e": Item("e", category="w"),
    }
    catalogue = IdMap(["a", "b", "c", "d", "e"])
    coverage = CategoryCoverage(items)
    coverage(torch.tensor([[0, 1, 3], [0, 3, 2]]), catalogue)  # {x, y}, {x, z}
    assert coverage.summary() == {"categories_per_list@20": 2.0, "category_coverage@20": 0.75, "categories": 4}
    assert CategoryCoverage({"a": Item("a")}).summary()["categories_per_list@20"] is None


@pytest.mark.parametrize("text", ["0,2", "0,0", "x", ""])
def test_settings_are_distinct_numbers_between_0_and_1(text):
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_strengths(text)


def _events_csv(tmp_path, n_events=800, n_users=40, n_items=60):
    """Random events; items i10.. are three times as popular as i0..i9."""
    import random

    rng = random.Random(0)
    weights = [1 if k < 10 else 3 for k in range(n_items)]
    rows = [
        (
            f"u{rng.randrange(n_users)}",
            f"i{rng.choices(range(n_items), weights)[0]}",
            "purchase" if k % 5 == 0 else "view",
            1_000_000 + 1000 * k,
        )
        for k in range(n_events)
    ]
    csv = tmp_path / "mine.csv"
    csv.write_text("user_id,item_id,type,ts\n" + "".join(f"{u},{i},{t},{ts}\n" for u, i, t, ts in rows))
    return csv


@pytest.mark.slow  # a whole eval command, plot included
def test_eval_diversity_fits_once_and_writes_the_tradeoff_table_and_plot(tmp_path, monkeypatch):
    from model_server.baselines.popularity import Popularity
    from model_server.evaluation import registry
    from streamrec.tools.cli import main
    from streamrec.tools.commands import eval as eval_command

    fits = []

    class Counted(Popularity):
        def fit(self, history, validation=None):
            fits.append(len(history))
            super().fit(history, validation)

    original = eval_command.load_source

    def with_categories(*args, **kwargs):  # an events CSV has no category column: 50 items of one, 10 alone
        data = original(*args, **kwargs)
        for k in range(60):
            data.item_info[f"i{k}"] = Item(f"i{k}", category=f"single{k}" if k < 10 else "big")
        return data

    monkeypatch.setattr(eval_command, "load_source", with_categories)
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))
    registry.register("counted", lambda context: Counted())
    out = tmp_path / "out"
    try:
        code = main(
            [
                "eval",
                "--events-csv",
                str(_events_csv(tmp_path, n_items=60)),
                "--models",
                "counted,itemknn",
                "--diversity",
                "0,0.5,1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
    finally:
        registry.MODELS.pop("counted")
    assert code == 0
    assert fits == [560]  # one fit, three test runs
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["diversity"] == [0.0, 0.5, 1.0]
    for name in ("counted", "itemknn"):
        rows = report["models"][name]["diversity"]
        assert [row["diversity"] for row in rows] == [0.0, 0.5, 1.0]
        assert rows[0]["mrr"] == report["models"][name]["overall"]["mrr"]  # the main figures are λ = 0's
        assert rows[-1]["categories_per_list@20"] == 11.0  # at λ = 1 every list spans all 11 categories first
        assert rows[-1]["categories_per_list@20"] > rows[0]["categories_per_list@20"]
        assert rows[0]["category_coverage@20"] <= rows[-1]["category_coverage@20"] == 1.0
    markdown = (out / "report.md").read_text()
    assert "## Diversity trade-off" in markdown and "| counted | 0.5 |" in markdown and "| itemknn | 1 |" in markdown
    assert "`diversity_tradeoff.png`" in markdown and (out / "diversity_tradeoff.png").stat().st_size > 0


def test_a_bad_diversity_setting_is_refused_by_the_command_line(tmp_path, capsys):
    from streamrec.tools.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--events-csv", "x.csv", "--diversity", "0,1.5", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
