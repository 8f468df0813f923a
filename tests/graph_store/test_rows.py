import ast
from pathlib import Path

from conftest import Event
from graph_store import interaction_rows, item_rows

REPO = Path(__file__).resolve().parents[2]


def test_events_of_one_edge_become_one_row_in_offset_order_with_suffix_extrema():
    rows = interaction_rows(
        [
            Event("u", "i", "view", 30, 0, 12),
            Event("u", "j", "view", 5, 0, 11),
            Event("u", "i", "view", 10, 0, 10),
            Event("u", "i", "view", 20, 0, 14),
            Event("u", "i", "purchase", 40, 0, 15),
        ]
    )
    by_key = {(r["user"], r["item"], r["type"]): r for r in rows}
    assert len(rows) == 3 and [r["k"] for r in rows] == [0, 1, 2]  # the index the upsert returns
    view = by_key[("u", "i", "view")]
    assert view["offsets"] == [10, 12, 14]
    assert view["ts_min_from"] == [10, 20, 20]
    assert view["ts_max_from"] == [30, 30, 20]
    assert by_key[("u", "i", "purchase")]["offsets"] == [15]


def test_a_record_held_twice_by_one_write_is_one_offset():
    # a batch and its redelivery after a rebalance, coalesced into one graph write
    batch = [Event("u", "i", "view", 10, 0, 10), Event("u", "i", "view", 20, 0, 11), Event("u", "j", "view", 5, 0, 12)]
    [first, second] = interaction_rows(batch + batch[1:])
    assert (first["offsets"], second["offsets"]) == ([10, 11], [12])
    # the same offset on another partition is another record
    assert [r["offsets"] for r in interaction_rows([batch[0], Event("u", "i", "view", 10, 1, 10)])] == [[10], [10]]


def test_rows_go_in_item_order_so_that_every_writer_locks_items_in_one_order():
    rows = interaction_rows(
        [
            Event("u2", "i9", "view", 1, 0, 1),
            Event("u1", "i3", "view", 2, 0, 2),
            Event("u2", "i3", "view", 3, 0, 3),
            Event("u1", "i5", "view", 4, 0, 4),
        ]
    )
    assert [(r["item"], r["user"]) for r in rows] == [("i3", "u1"), ("i3", "u2"), ("i5", "u1"), ("i9", "u2")]


def test_last_item_record_wins():
    from stream.events import Item as I

    rows = item_rows([I("a", "old"), I("b"), I("a", "new", "c")])
    assert rows == [
        {"id": "a", "title": "new", "category": "c", "brand": None, "price": None},
        {"id": "b", "title": None, "category": None, "brand": None, "price": None},
    ]


def _cypher_calls(tree):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("_run", "run", "execute_query")
            and node.args
        ):
            yield node


def test_no_string_built_cypher_anywhere():
    """Every statement sent to the graph server is a constant of graph_store/queries.py; values travel as parameters."""
    offenders = []
    for path in REPO.glob("**/*.py"):
        if any(part in (".venv", "tests") for part in path.parts):
            continue
        tree = ast.parse(path.read_text())
        for call in _cypher_calls(tree):
            first = call.args[0]
            if isinstance(first, (ast.JoinedStr, ast.BinOp)) or (
                isinstance(first, ast.Call) and getattr(first.func, "attr", "") == "format"
            ):
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert offenders == []


def test_query_constants_have_no_format_placeholders():
    from graph_store import queries

    for name in dir(queries):
        value = getattr(queries, name)
        statements = value if isinstance(value, tuple) else (value,)
        for statement in statements:
            if isinstance(statement, str) and not name.startswith("_"):
                assert "{}" not in statement and "%s" not in statement, name
