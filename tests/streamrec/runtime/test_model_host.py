"""The model host process and its client, without servers (the worker path with servers is in tests/e2e)."""

import asyncio
import json
import os
import signal

import pytest

from stream.events import Interaction
from streamrec.runtime.model_client import ModelClient
from streamrec.runtime.model_seam import ModelHostDied, ModelHostError
from streamrec.runtime.settings import load_settings


def _events(start: int, pairs: list[tuple[str, str]]) -> list[Interaction]:
    return [
        Interaction(f"e{start + k}", user, item, "view", 1_700_000_000_000 + start + k, offset=start + k)
        for k, (user, item) in enumerate(pairs)
    ]


def test_the_host_answers_in_its_own_process_and_its_death_is_reported(tmp_path):
    settings = load_settings({"STREAMREC_HOME": str(tmp_path), "STREAMREC_MODEL_DIR": str(tmp_path / "models")})
    client = ModelClient(settings, None)  # no checkpoint: the co-occurrence baseline
    try:
        assert client.process.pid != os.getpid() and client.info.name == "cooccurrence"
        assert client.info.refresh_is_idempotent is True  # a function of the edges, as the temporal GAT's

        async def scenario():
            events = _events(0, [("a", "x"), ("a", "y"), ("b", "x"), ("b", "z")])
            refreshed = await client.refresh(events, events)
            assert {"observe", "rank"} <= set(refreshed.seconds)
            records = {user: json.loads(value) for user, value in refreshed.lists}
            assert set(records) == {"a", "b"} and records["a"]["last_event_id"] == "e1"
            # co-occurrence: a's items are x, y; x was also bought with z by b, so z is recommended to a
            assert "z" in [entry["item_id"] for entry in records["a"]["items"]]
            assert (
                json.loads(await client.lookup("a", 2))["user_id"] == "a" and await client.lookup("nobody", 2) is None
            )
            # only the seam's requests are answered; a failing one reports what failed there
            with pytest.raises(ModelHostError, match="LookupError: no such request 'no_such_method'"):
                await client._request("no_such_method")
            os.kill(client.process.pid, signal.SIGKILL)
            client.process.join(10)
            with pytest.raises(ModelHostDied):
                await client.sweep_stale(10)

        asyncio.run(scenario())
    finally:
        client.close()
