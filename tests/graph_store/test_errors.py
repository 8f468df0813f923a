"""Against the session's Neo4j: each way a query fails is told apart, with a message an operator can act on."""

import asyncio
import time

import pytest

from conftest import Event, free_port, poison_edge
from graph_store import GraphRejected, GraphStore, GraphUnavailable


def test_rows_the_server_can_never_apply_are_rejected_with_its_reason(server_settings, unique):
    poison_edge(server_settings, unique + "u", unique + "i")

    async def upsert():
        async with GraphStore.from_settings(server_settings, driver_retries=False) as store:
            await store.upsert_interactions([Event(unique + "u", unique + "i", "view", 1000, 0, 1)])

    with pytest.raises(GraphRejected, match=r"Neo\.ClientError\.Statement\.\w+"):
        asyncio.run(upsert())

    async def size():  # the graph's size, which the demo reads, leaves the foreign count out instead of failing
        async with GraphStore.from_settings(server_settings) as store:
            return await store.size()

    assert asyncio.run(size())["edges"] >= 1


@pytest.mark.parametrize(
    "change, says",
    [
        ({"neo4j_user": "nobody"}, "refused the credentials: check STREAMREC_NEO4J_USER and STREAMREC_NEO4J_PASSWORD"),
        ({"neo4j_database": "nosuchdb"}, "set STREAMREC_NEO4J_DATABASE"),
    ],
)
def test_a_set_up_the_server_refuses_is_not_blamed_on_the_records(server_settings, unique, change, says):
    from dataclasses import replace

    settings = replace(server_settings, **change)

    async def upsert():
        async with GraphStore.from_settings(settings, driver_retries=False) as store:
            await store.upsert_interactions([Event(unique + "u", unique + "i", "view", 1000, 0, 1)])

    with pytest.raises(GraphUnavailable, match=says):
        asyncio.run(upsert())


def test_an_absent_server_is_unavailable_at_once_when_the_caller_does_the_retrying(server_settings):
    async def read():
        async with GraphStore(f"bolt://127.0.0.1:{free_port()}", "neo4j", "x" * 8, None, driver_retries=False) as store:
            await store.size()

    started = time.monotonic()
    with pytest.raises(GraphUnavailable, match="Couldn't connect"):
        asyncio.run(read())
    assert time.monotonic() - started < 10  # the driver alone would retry for 30 s
