"""`streamrec load` against the session's real Neo4j: the synthetic edges arrive as edges of record, a second
load of the same ids writes nothing."""

import asyncio
import json

from graph_store import GraphStore
from streamrec.tools.cli import main
from streamrec.tools.synthetic_graph import synthetic_edges, user_id


def _edges_of(settings, users):
    async def read():
        async with GraphStore.from_settings(settings) as store:
            return await store.edges_of_users(users)

    return asyncio.run(read())


def test_load_writes_every_edge_once_and_refuses_ids_that_exist(
    server_settings, server_env, unique, monkeypatch, tmp_path, capsys
):
    for key, value in server_env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "load.json"
    arguments = ["load", "--edges", "2000", "--users", "150", "--items", "60", "--seed", "5", "--prefix", unique]
    assert main([*arguments, "--rows-per-transaction", "700", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["edges"] == 2000 and report["edges_per_second"] > 0

    # the command's edges are the generator's, with the same seed (times: the command's span ends at its start)
    expected = synthetic_edges(2000, users=150, items=60, seed=5)
    users = sorted({user_id(rank, unique) for rank in expected.users.tolist()})
    assert report["users"] == len(users)
    stored = _edges_of(server_settings, users)
    assert len(stored) == 2000
    assert sum(edge["count"] for edge in stored) == int(expected.count.sum())
    assert len({(e["user"], e["item"], e["type"]) for e in stored}) == 2000
    assert all(edge["first_ts"] <= edge["last_ts"] for edge in stored)

    capsys.readouterr()
    assert main(arguments) == 2  # the same ids again: refused before any write, in one line
    assert "already holds 150 of these users and 60 of these items" in capsys.readouterr().out
    assert len(_edges_of(server_settings, users)) == 2000
