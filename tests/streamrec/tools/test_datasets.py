"""Loaders: the REES46 and Wikipedia formats, read from small files written here; ML-100K, the data set set-up
fetches on any machine, has its published counts; an absent data set says where it comes from; --events-csv rejects
bad files. Nothing here reads the data folder (STREAMREC_DATA_DIR)."""

import csv
import gzip
import hashlib
import io

import pytest

import real_events
from streamrec.tools.datasets import WIKIPEDIA_ORIGIN_MS, DatasetError, load_dataset, load_events_csv


def check(data, rows, users, items):
    assert data.summary()["rows"] == rows
    assert data.summary()["users"] == users
    assert data.summary()["items"] == items
    assert all(a <= b for a, b in zip(data.ts, data.ts[1:])), "events must be in time order"
    assert data.checksums and all(len(v) == 64 for v in data.checksums.values())


def write_gz_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(gzip.compress(text.getvalue().encode()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


REES46_HEADER = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]
REES46_ROWS = [  # the shape of 2019-Oct.csv; out of time order on purpose, with a tie kept in file order
    [
        "2019-10-01 00:00:05 UTC",
        "cart",
        "1307067",
        "2053013558920217191",
        "computers.notebook",
        "lenovo",
        "251.74",
        "550050854",
        "7c90fc70-0e80-4590-96f3-13c02c18c713",
    ],
    [
        "2019-10-01 00:00:00 UTC",
        "view",
        "44600062",
        "2103807459595387724",
        "",
        "shiseido",
        "35.79",
        "541312140",
        "72d76fde-8bb3-4e00-8c23-a032dfed738c",
    ],
    [
        "2019-10-01 00:00:01 UTC",
        "view",
        "17200506",
        "2053013559792632471",
        "furniture.living_room.sofa",
        "",
        "543.10",
        "519107250",
        "566511c2-e2e3-422b-b695-cf8e6e792ca8",
    ],
    [
        "2019-10-01 00:00:05 UTC",
        "purchase",
        "1307067",
        "2053013558920217191",
        "computers.notebook",
        "lenovo",
        "251.74",
        "550050854",
        "7c90fc70-0e80-4590-96f3-13c02c18c713",
    ],
    [
        "2019-10-01 00:00:03 UTC",
        "view",
        "1307067",
        "2053013558920217191",
        "computers.notebook",
        "lenovo",
        "251.74",
        "519107250",
        "566511c2-e2e3-422b-b695-cf8e6e792ca8",
    ],
]


def test_rees46_loader_reads_the_store_format(tmp_path):
    name = "rees46_2019-Oct_head_17434.csv.gz"
    digest = write_gz_csv(tmp_path / "rees46_oct2019_head" / name, REES46_HEADER, REES46_ROWS)
    data = load_dataset("rees46", tmp_path, tmp_path / "cache")
    check(data, 5, 3, 3)
    assert data.name == "rees46" and data.checksums == {name: digest}
    base = 1_569_888_000_000  # 2019-10-01T00:00:00Z
    assert data.ts == [base, base + 1000, base + 3000, base + 5000, base + 5000]
    assert data.users == ["541312140", "519107250", "519107250", "550050854", "550050854"]
    assert data.items == ["44600062", "17200506", "1307067", "1307067", "1307067"]
    assert data.types == ["view", "view", "view", "add_to_cart", "purchase"]  # cart -> add_to_cart; tie in file order
    info = data.item_info
    assert (info["1307067"].category, info["1307067"].brand, info["1307067"].price) == (
        "computers.notebook",
        "lenovo",
        251.74,
    )
    # no category code: the category's number stands in
    assert (info["44600062"].category, info["44600062"].brand) == ("2103807459595387724", "shiseido")
    assert (info["17200506"].category, info["17200506"].brand, info["17200506"].price) == (
        "furniture.living_room.sofa",
        None,
        543.10,
    )
    assert all(entry.title is None for entry in info.values())  # the store gives no titles


def test_wikipedia_loader_reads_the_jodie_format(tmp_path):
    name = "wikipedia_uitl.csv.gz"
    rows = [
        ["0", "8227", "0", "0"],
        ["1", "8228", "36", "0"],
        ["2", "8229", "131.0", "1"],
        ["1", "8228", "77", "0"],
        ["0", "8229", "131", "0"],
    ]  # out of order and a tie (131 s twice), as the loader must not assume
    digest = write_gz_csv(tmp_path / "jodie_wikipedia" / name, ["u", "i", "ts", "label"], rows)
    data = load_dataset("wikipedia", tmp_path, tmp_path / "cache")
    check(data, 5, 3, 3)
    assert data.name == "wikipedia" and data.checksums == {name: digest}
    assert data.ts == [WIKIPEDIA_ORIGIN_MS + s * 1000 for s in (0, 36, 77, 131, 131)]
    assert data.users == ["0", "1", "1", "2", "0"] and data.items == ["8227", "8228", "8228", "8229", "8229"]
    assert set(data.types) == {"click"} and data.item_info == {}  # one type, no item text


@pytest.mark.parametrize(
    "name, folder, file_name, source",
    [
        ("rees46", "rees46_oct2019_head", "rees46_2019-Oct_head_17434.csv.gz", "Team11_Customer_Segmentation"),
        ("wikipedia", "jodie_wikipedia", "wikipedia_uitl.csv.gz", "TantalizingPotato/TE-Conv"),
    ],
)
def test_an_absent_data_set_says_where_it_comes_from_and_where_it_was_looked_for(
    tmp_path, name, folder, file_name, source
):
    data_dir = tmp_path / "no-shared-data"
    with pytest.raises(DatasetError) as error:
        load_dataset(name, data_dir, tmp_path / "cache")
    message = str(error.value)
    assert str(data_dir / folder / file_name) in message  # the file it looked for
    assert "STREAMREC_DATA_DIR" in message and "$STREAMREC_HOME/data" in message  # how to point it elsewhere
    assert source in message and "PROVENANCE.md" in message  # the public source
    assert ("REES46" if name == "rees46" else "JODIE") in message
    assert "ml-100k" in message  # the data set that needs no data folder


def test_ml100k_matches_data_md():
    folder = real_events.ml100k_folder()  # fetched once per machine into REPO/.streamrec/data (an error if not)
    data = load_dataset("ml-100k", folder.parent, folder.parent)
    check(data, 100_000, 943, 1_682)
    assert {t: data.types.count(t) for t in set(data.types)} == {"purchase": 55_375, "view": 44_625}  # rating >= 4
    assert len(data.item_info) == 1_682
    toy_story = data.item_info["1"]
    assert (toy_story.title, toy_story.category) == ("Toy Story (1995)", "Animation, Children's, Comedy")
    assert data.checksums == {"ml-100k.inter": real_events.SHA256["ml-100k.inter"]}


def write(tmp_path, text, name="events.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_events_csv_loads_a_good_file(tmp_path):
    path = write(
        tmp_path, "user_id,item_id,type,ts,item_text\nu1,i1,view,1700000000000,Red shoe\nu2,i1,purchase,1600000000,\n"
    )
    data = load_events_csv(path)
    assert (len(data), data.users, data.ts) == (2, ["u2", "u1"], [1_600_000_000_000, 1_700_000_000_000])
    assert data.item_info["i1"].title == "Red shoe"


@pytest.mark.parametrize(
    "body, line, problem",
    [
        ("user_id,item_id,type,ts\nu1,i1,view,1\nu2,i2,like,2\n", "line 3", "type 'like'"),
        ("user_id,item_id,type,ts\nu1,i1,view,yesterday\n", "line 2", "is not a number"),
        ("user_id,item_id,type,ts\nu1,i1,view\n", "line 2", "expected 4 columns, got 3"),
        ("user_id,item_id,type,ts\nu1,i1,view,1\n,i2,view,2\n", "line 3", "must not be empty"),
        ("user,item,kind,time\nu1,i1,view,1\n", "line 1", "header"),
        ("user_id,item_id,type,ts\n", "", "no events"),
    ],
)
def test_events_csv_rejects_a_malformed_file_naming_line_and_problem(tmp_path, body, line, problem):
    path = write(tmp_path, body)
    with pytest.raises(DatasetError) as error:
        load_events_csv(path)
    assert line in str(error.value) and problem in str(error.value)


def test_eval_command_reports_a_malformed_csv(tmp_path, capsys):
    from streamrec.tools.cli import main

    path = write(tmp_path, "user_id,item_id,type,ts\nu1,i1,view,1\nu2,i2,view,\n")
    assert main(["eval", "--events-csv", str(path), "--models", "pop", "--out", str(tmp_path / "out")]) == 2
    assert "line 3" in capsys.readouterr().err
