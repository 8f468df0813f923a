"""A worker joins its group only when it can write, and leaves it when it cannot write for longer than
STREAMREC_WRITE_STALL_LEAVE_S (issue 27): the clock, the leaving decision and the start-up wait, without servers
(tests/e2e/test_graph_unreachable.py runs them against real ones)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from graph_store import GraphRejected
from graph_store.errors import GraphUnavailable
from stream.events import Interaction
from stream.retries import RecordsRejected
from streamrec.runtime import probes, worker
from streamrec.runtime.model_seam import ModelInfo
from streamrec.runtime.settings import load_settings
from streamrec.runtime.write_stall import LEAVE_STATUS, WriteStall


class Clock:
    def __init__(self) -> None:
        self.now = 128.0  # (whole and half seconds stay exact in binary floating point)

    def __call__(self) -> float:
        return self.now


def fail(error: Exception):
    raise error


def test_failed_writes_stall_from_the_first_failure_until_a_success():
    clock = Clock()
    stall = WriteStall(clock)
    with stall.attempt():
        clock.now += 0.5  # a write that succeeds
    assert stall.seconds() == 0.0
    for _ in range(3):
        with pytest.raises(GraphUnavailable), stall.attempt():
            clock.now += 1.0
            fail(GraphUnavailable("Couldn't connect to 127.0.0.1:7687"))
        clock.now += 9.0
    assert stall.seconds() == 30.0  # from the start of the first failed attempt
    assert stall.describe() == "3 failed attempts, the last: GraphUnavailable: Couldn't connect to 127.0.0.1:7687"
    assert not stall.should_leave(31.0) and stall.should_leave(30.0)
    assert not stall.should_leave(0)  # 0: never leave
    with stall.attempt():
        pass
    assert stall.seconds() == 0.0 and stall.failures == 0 and not stall.should_leave(1.0)


def test_a_write_that_hangs_is_a_stall_and_a_long_read_is_not():
    clock = Clock()
    stall = WriteStall(clock)
    with stall.attempt():
        clock.now += 45.0  # e.g. packets dropped: the driver waits with no error
        assert stall.seconds() == 45.0 and stall.describe() == "a write has not returned"
    with stall.attempt(hanging_counts=False):  # the warm start reading a large graph
        clock.now += 300.0
        assert stall.seconds() == 0.0
    with pytest.raises(OSError), stall.attempt(hanging_counts=False):
        fail(OSError("connection reset"))
    clock.now += 5.0
    assert stall.seconds() == 5.0  # its failure counts


def test_records_the_server_refuses_are_not_a_stall_nor_is_a_stop():
    clock = Clock()
    stall = WriteStall(clock)
    with pytest.raises(GraphRejected), stall.attempt():
        fail(GraphRejected("Neo.ClientError.Statement.TypeError: cannot add to a boolean"))
    with pytest.raises(asyncio.CancelledError), stall.attempt():
        raise asyncio.CancelledError  # SIGTERM while a write is in flight
    clock.now += 100.0
    assert stall.seconds() == 0.0


def test_concurrent_writes_the_oldest_unanswered_one_counts():
    clock = Clock()
    stall = WriteStall(clock)
    items = stall.attempt()
    items.__enter__()  # the items agent's write, hanging
    clock.now += 10.0
    with stall.attempt():  # an interactions write succeeds meanwhile
        pass
    clock.now += 5.0
    assert stall.seconds() == 15.0
    items.__exit__(None, None, None)
    assert stall.seconds() == 0.0


class FailingStore:
    def __init__(self) -> None:
        self.error: Exception | None = GraphUnavailable("Couldn't connect to 127.0.0.1:1 (reason [Errno 111])")

    async def upsert_interactions(self, events: list[Interaction]):
        if self.error is not None:
            raise self.error
        return SimpleNamespace(fresh=events)


def pipeline_with(store: FailingStore, clock: Clock, **env: str) -> worker.Pipeline:
    settings = load_settings({f"STREAMREC_{k.upper()}": v for k, v in env.items()}, cwd=Path("/tmp"))
    model = SimpleNamespace(info=ModelInfo("cooc", "v0", True, "cpu"))
    pipeline = worker.Pipeline(settings, model, None)  # type: ignore[arg-type]  # (only its info is read here)
    pipeline._store, pipeline._warm, pipeline.writes = store, True, WriteStall(clock)  # type: ignore[assignment]
    return pipeline


def interaction(k: int) -> Interaction:
    return Interaction(f"e{k}", f"u{k}", f"i{k}", "view", 1_700_000_000_000 + k, topic="interactions", offset=k)


def test_a_worker_whose_graph_writes_fail_past_the_limit_leaves_its_group_once_with_status_3(monkeypatch, caplog):
    signals: list[tuple[int, int]] = []
    monkeypatch.setattr(worker.os, "kill", lambda pid, sig: signals.append((pid, sig)))
    clock, store = Clock(), FailingStore()
    pipeline = pipeline_with(store, clock, write_stall_leave_s="20")

    async def attempt() -> None:
        with pytest.raises(GraphUnavailable):
            await pipeline.upsert_interactions([interaction(1)])

    asyncio.run(attempt())
    clock.now += 19.0
    pipeline.check_write_stall()
    assert signals == [] and pipeline.failure is None
    asyncio.run(attempt())
    clock.now += 1.0
    with caplog.at_level(logging.WARNING, logger="streamrec.runtime.worker"):
        pipeline.check_write_stall()
        pipeline.check_write_stall()  # the next ticks while it stops
    assert signals == [(os.getpid(), signal.SIGTERM)]
    assert (pipeline.exit_status, pipeline.failure) == (LEAVE_STATUS, "cannot write to the graph server for 20 s")
    [line] = [r.getMessage() for r in caplog.records]
    assert "cannot write to the graph server at bolt://127.0.0.1:7687 for 20 s (2 failed attempts" in line
    assert "leaving the consumer group" in line and "STREAMREC_WRITE_STALL_LEAVE_S=20" in line


def test_records_refused_or_a_write_that_succeeds_keep_the_worker_in_its_group(monkeypatch):
    signals: list[int] = []
    monkeypatch.setattr(worker.os, "kill", lambda pid, sig: signals.append(sig))
    clock, store = Clock(), FailingStore()
    pipeline = pipeline_with(store, clock, write_stall_leave_s="20")
    store.error = GraphRejected("Neo.ClientError.Statement.TypeError")
    with pytest.raises(RecordsRejected):
        asyncio.run(pipeline.upsert_interactions([interaction(1)]))
    clock.now += 60.0
    pipeline.check_write_stall()
    store.error = GraphUnavailable("down")
    with pytest.raises(GraphUnavailable):
        asyncio.run(pipeline.upsert_interactions([interaction(2)]))
    clock.now += 10.0
    store.error = None
    assert asyncio.run(pipeline.upsert_interactions([interaction(3)])) == [interaction(3)]
    clock.now += 60.0
    pipeline.check_write_stall()
    assert signals == [] and pipeline.failure is None


def test_with_the_limit_at_0_a_worker_never_leaves(monkeypatch):
    signals: list[int] = []
    monkeypatch.setattr(worker.os, "kill", lambda pid, sig: signals.append(sig))
    clock = Clock()
    pipeline = pipeline_with(FailingStore(), clock, write_stall_leave_s="0")
    with pytest.raises(GraphUnavailable):
        asyncio.run(pipeline.upsert_interactions([interaction(1)]))
    clock.now += 86_400.0
    pipeline.check_write_stall()
    assert signals == [] and pipeline.failure is None


def checks(monkeypatch, answers: list[tuple[str | None, str | None]]) -> list[int]:
    """graph_check answers in turn; returns the list the calls are counted in."""
    calls: list[int] = []

    def graph_check(settings, connection_timeout_s=5.0):
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]

    monkeypatch.setattr(probes, "graph_check", graph_check)
    return calls


def test_a_worker_waits_for_the_graph_server_before_it_joins_with_one_line_each_way(monkeypatch, caplog):
    down = (None, "ServiceUnavailable: Couldn't connect to 127.0.0.1:1")
    calls = checks(monkeypatch, [down, down, down, (None, None)])
    waited: list[float] = []
    settings = load_settings({}, cwd=Path("/tmp"))
    with caplog.at_level(logging.INFO, logger="streamrec.runtime.worker"):
        worker.wait_for_graph(settings, down[1] or "", waited.append, every_s=0.05)
    assert len(calls) == 4 and waited  # the liveness tick ran between the checks
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "does not take writes (ServiceUnavailable: Couldn't connect to 127.0.0.1:1)" in lines[0]
    assert "not joining the consumer group until it does" in lines[0]
    assert "takes writes, after " in lines[1] and lines[1].endswith(" s: joining the consumer group")


def test_a_graph_server_that_comes_back_refusing_the_credentials_stops_start_up(monkeypatch):
    checks(monkeypatch, [("the graph server at bolt://x refused the credentials of user 'neo4j'", None)])
    with pytest.raises(worker.StartupError, match="refused the credentials"):
        worker.wait_for_graph(load_settings({}, cwd=Path("/tmp")), "down", every_s=0.01)


def test_sigterm_while_waiting_stops_the_worker_and_restores_the_signal_handlers(monkeypatch):
    checks(monkeypatch, [(None, "down")])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(worker.Stopped, match="SIGTERM"):
        worker.wait_for_graph(
            load_settings({}, cwd=Path("/tmp")),
            "down",
            lambda waited_s: os.kill(os.getpid(), signal.SIGTERM),
            every_s=0.05,
        )
    assert signal.getsignal(signal.SIGTERM) is before
