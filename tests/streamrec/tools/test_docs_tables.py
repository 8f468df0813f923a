"""The docs' measured tables are generated from the reports in docs/results/, so a typed figure cannot drift."""

import json
import subprocess
import sys

import pytest

from streamrec.tools.docs_tables import BLOCK, DocsTableError, eval_markdown, rebuild, stale_pages

from conftest import REPO

DOCS = REPO / "docs"


def test_every_table_in_the_docs_equals_its_report():
    assert stale_pages(DOCS, write=False) == []
    check = subprocess.run(
        [sys.executable, "-m", "streamrec", "docs-tables", "--check", "--docs", str(DOCS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_report_says_its_command_and_commit():
    blocks = [m for page in DOCS.glob("*.md") for m in BLOCK.finditer(page.read_text())]
    assert blocks, "the docs hold generated tables"
    for block in blocks:
        for name in block["files"].split():
            report = json.loads((DOCS / name).read_text())
            command = report.get("command") or report.get("config", {}).get("command")
            assert command and command.startswith("streamrec "), name
            assert len((report.get("git") or {}).get("commit") or "") == 40, name


def _report(name: str, mrr: dict) -> dict:
    return {
        "dataset": {"name": name, "rows": 1000},
        "config": {"command": f"streamrec eval --dataset {name}"},
        "git": {"commit": "a" * 40, "dirty": False},
        "models": {model: {"overall": {"mrr": value}} for model, value in mrr.items()},
    }


def test_a_typed_edit_is_rebuilt_and_reported(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(_report("rees46", {"streamrec": 0.27, "pop": 0.03})))
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- table eval r.json -->\n| typed | 0.99 |\n<!-- end table -->\nafter\n")
    assert stale_pages(tmp_path, write=False) == [page]
    assert "0.99" in page.read_text()  # --check changes nothing
    assert stale_pages(tmp_path, write=True) == [page] and stale_pages(tmp_path, write=False) == []
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("<!-- end table -->\nafter\n")
    assert "| rees46 (1,000 events) | **0.2700** | 0.0300 |" in text and "0.99" not in text
    assert "`streamrec eval --dataset rees46` (commit aaaaaaa)" in text


def test_eval_table_marks_the_best_and_a_missing_model():
    table = eval_markdown([_report("a", {"streamrec": 0.5, "pop": 0.6}), _report("b", {"streamrec": 0.2})])
    assert "| test MRR | streamrec | pop |" in table
    assert "| a (1,000 events) | 0.5000 | **0.6000** |" in table and "| b (1,000 events) | **0.2000** | – |" in table


def test_a_missing_report_or_kind_is_named(tmp_path):
    with pytest.raises(DocsTableError, match="gone.json"):
        rebuild("<!-- table eval gone.json -->\n<!-- end table -->", tmp_path / "p.md")
    with pytest.raises(DocsTableError, match="unknown table kind 'nope'"):
        rebuild("<!-- table nope x.json -->\n<!-- end table -->", tmp_path / "p.md")


def test_eval_table_shows_the_spread_over_seeds():
    report = _report("a", {"streamrec": 0.5})
    report["models"]["streamrec"]["across_seeds"] = {"mrr": {"mean": 0.51, "std": 0.012, "n": 3}}
    assert "| a (1,000 events) | **0.5100 ± 0.0120** |" in eval_markdown([report])


def test_refresh_table_gives_each_size_and_micro_batch():
    from streamrec.tools.docs_tables import refresh_markdown

    batch = {"batch_size": 1, "ratio": 5.4, "ratio_with_sweep": 4.0}
    report = {
        "command": "streamrec bench-refresh",
        "device": "cpu",
        "threads": 1,
        "git": {"commit": "b" * 40},
        "results": [
            {
                "edges": 10_000,
                "source": "JODIE Wikipedia, first 10000 events",
                "full_recompute_s": 0.011,
                "micro_batches": [batch, {**batch, "batch_size": 100, "ratio": 242.0}],
            }
        ],
    }
    table = refresh_markdown([report])
    assert (
        "| edges | source | full recompute | refresh per event, one at a time | per event, micro-batches of 100 |"
        in table
    )
    assert (
        "| 10,000 | JODIE Wikipedia, first 10000 events | 11 ms | 5.4× cheaper (4.0× with the sweep) | "
        "242.0× cheaper (4.0× with the sweep) |" in table
    )
    assert "(device cpu, 1 thread(s), commit bbbbbbb)" in table


def test_a_later_report_of_a_data_set_replaces_its_models():
    table = eval_markdown([_report("a", {"streamrec": 0.5, "pop": 0.6}), _report("a", {"streamrec": 0.7})])
    assert "| a (1,000 events) | **0.7000** | 0.6000 |" in table and table.count("| a (") == 1
    assert table.count("`streamrec eval --dataset a`") == 2  # both runs named


def test_a_data_set_ranked_per_event_is_a_row_of_its_own():
    per_event = _report("a", {"streamrec": 0.8})
    per_event["config"]["batch_size"] = 1
    table = eval_markdown([_report("a", {"streamrec": 0.5, "pop": 0.6}), per_event])
    assert "| a (1,000 events) | 0.5000 | **0.6000** |" in table
    assert "| a, per event (1,000 events) | **0.8000** | – |" in table


def test_demo_table_names_the_run():
    from streamrec.tools.docs_tables import demo_markdown

    summary = {
        "command": "streamrec demo",
        "git": {"commit": "c" * 40, "dirty": False},
        "dataset": "ml-100k",
        "events_in": 100_000,
        "dlq": 0,
        "lists_published": 8215,
        "users_with_lists": 943,
        "freshness_p50_s": 0.054,
        "freshness_p99_s": 0.344,
        "freshness_max_s": 0.67,
        "target_rate": 1000,
        "warmup_events": 3000,
        "graph": {"users": 943, "items": 1682, "edges": 100_000},
    }
    table = demo_markdown([summary])
    assert (
        "| ml-100k | 100,000 | 0 | 8,215 | 943 | 0.054 s | 0.344 s | 0.67 s | 943 users, 1,682 items, 100,000 edges |"
        in table
    )
    assert "- `streamrec demo` at 1,000 events/s, the first 3,000 untimed (commit ccccccc)" in table


def test_diversity_table_gives_each_model_and_setting():
    from streamrec.tools.docs_tables import diversity_markdown

    report = _report("rees46", {"streamrec": 0.3})
    report["models"]["streamrec"]["diversity"] = [
        {
            "diversity": 0.0,
            "mrr": 0.3,
            "ndcg@20": 0.31,
            "recall@20": 0.4,
            "intra_list_diversity@20": 0.8,
            "categories_per_list@20": 2.5,
            "category_coverage@20": 0.7,
        },
        {"diversity": 0.25, "mrr": 0.29, "ndcg@20": 0.3, "recall@20": 0.39, "intra_list_diversity@20": 0.85},
    ]
    table = diversity_markdown([report])
    assert "| rees46 | streamrec | 0 | 0.3000 | 0.3100 | 0.4000 | 0.8000 | 2.5000 | 0.7000 |" in table
    assert "| rees46 | streamrec | 0.25 | 0.2900 | 0.3000 | 0.3900 | 0.8500 | – | – |" in table
    assert "`streamrec eval --dataset rees46`" in table
