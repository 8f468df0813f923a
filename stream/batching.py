"""Micro-batches cut from a stream while earlier batches are still being written, and the lanes they go through.

Faust's `take_events` fills its buffer only while the loop body waits for it and acks a batch when the body
returns, so each batch costs its processing time plus a full `within` window in which nothing is processed
(measured: 182 ms of work + 50 ms of waiting per 240-event batch at 1,000 ev/s). Here the agent's loop only
buffers events; batches are taken as soon as the model is free ("smart batching": the batch is whatever
arrived meanwhile, so it grows with the load and stays small when idle), and the slow sinks are lanes that run
beside the next batch's model work:

    model lane   refresh(batch N)            one at a time, in order (the caller awaits it)
    graph lane   upsert(batches N, N+1, ...) one write at a time, in order: an edge applies only offsets newer
                                             than the last one it stored, so two upserts must never race; the
                                             batches taken while a write runs go together into the next one
    publish lane send lists N, await acks    one at a time, in order: a retried older list must never land
                                             after a newer one for the same user (compaction keeps the last)

A batch's events are acked (their offsets may be committed) only when its dead letters, its upsert and its
lists are all acknowledged; nothing is acked otherwise, so a crash or a stop re-delivers it (at-least-once; the
sinks are idempotent). At most `max_in_flight` batches are unfinished; beyond that the agent stops buffering
and Faust stops fetching (back-pressure).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatches(Generic[T]):
    """Events buffered by the agent's loop, taken in batches of at most `max_size`. A batch is taken as soon as
    the taker asks and something is pending, after lingering at most `linger_s` from the arrival of its first
    event for more to join; at most `max_pending` events are buffered (put() waits for room)."""

    def __init__(self, max_size: int, linger_s: float, max_pending: int):
        self.max_size, self.linger_s, self.max_pending = max_size, linger_s, max(max_pending, max_size)
        self._pending: list[T] = []
        self._first_arrival = 0.0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def put(self, item: T) -> None:
        while len(self._pending) >= self.max_pending:
            self._room.clear()
            await self._room.wait()
        if not self._pending:
            self._first_arrival = time.monotonic()
        self._pending.append(item)
        self._arrived.set()

    async def take(self) -> list[T]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._first_arrival + self.linger_s
        while len(self._pending) < self.max_size and (left := deadline - time.monotonic()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        batch, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
        if self._pending:  # the worker is behind: what is left goes with the next take without lingering
            self._first_arrival = float("-inf")
        self._room.set()
        return batch


class Lane:
    """Runs actions one at a time in submission order, without making the submitter wait for them."""

    def __init__(self) -> None:
        self._last: asyncio.Future[Any] | None = None

    def submit(self, action: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        previous = self._last

        async def after_previous() -> T:
            if previous is not None:
                await asyncio.wait([previous])  # its failure is its own batch's business
            return await action()

        self._last = last = asyncio.ensure_future(after_previous())
        return last


class CoalescingLane(Generic[T, R]):
    """Runs `write(items)` one call at a time, in submission order; everything submitted while a call runs goes
    into the next call together. A busy sink thus gets fewer, larger writes (a graph upsert's cost is mostly
    per transaction: measured 15-24 ms for 41-60 events at 1,000 events/s). With `linger_s`, a call also waits
    up to that long from its first item for more to join, unless `max_items` are waiting: a sink written
    behind the lists (the graph of record) then gets a few large writes per second at any rate.
    submit() returns the future of the call its items went into (the result covers all of that call's items)."""

    def __init__(self, write: Callable[[list[T]], Awaitable[R]], linger_s: float = 0.0, max_items: int = 0):
        self._write = write
        self.linger_s, self.max_items = linger_s, max_items
        self._waiting: list[T] = []
        self._first_waiting = 0.0
        self._more = asyncio.Event()
        self._next: asyncio.Future[R] | None = None  # the result of the call the waiting items will go into
        self._writer: asyncio.Future[None] | None = None

    def submit(self, items: list[T]) -> asyncio.Future[R]:
        if not self._waiting:
            self._first_waiting = time.monotonic()
        self._waiting.extend(items)
        self._more.set()
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_waiting())
        return self._next

    async def _linger(self) -> None:
        deadline = self._first_waiting + self.linger_s
        while (not self.max_items or len(self._waiting) < self.max_items) and (left := deadline - time.monotonic()) > 0:
            self._more.clear()
            try:
                await asyncio.wait_for(self._more.wait(), left)
            except asyncio.TimeoutError:
                return

    async def _write_waiting(self) -> None:
        while self._waiting:
            if self.linger_s > 0:
                await self._linger()
            items, result = self._waiting, self._next
            assert result is not None  # submit() makes the future of every call that has waiting items
            self._waiting, self._next = [], None
            try:
                value = await self._write(items)
            except asyncio.CancelledError:  # shutdown: these batches and the waiting ones stay unacked (redelivered)
                result.cancel()
                if self._next is not None:
                    self._next.cancel()
                self._waiting, self._next = [], None
                raise
            except Exception as exc:  # the write's failure is its batches' business
                if not result.done():  # (a waiter may have cancelled it: a stopping worker)
                    result.set_exception(exc)
            else:
                if not result.done():
                    result.set_result(value)


class InFlight:
    """At most `max_events` events in unfinished batches (a larger batch starts alone); `drain()` waits for
    those still running (a graceful stop)."""

    def __init__(self, max_events: int):
        self.max_events = max_events
        self._events = 0
        self._room = asyncio.Event()
        self._running: set[asyncio.Future[Any]] = set()

    async def start(self, work: Awaitable[T], events: int = 1) -> asyncio.Future[T]:
        while self._events and self._events + events > self.max_events:
            self._room.clear()
            await self._room.wait()
        self._events += events
        task = asyncio.ensure_future(work)
        self._running.add(task)

        def finished(done: asyncio.Future[Any]) -> None:
            self._running.discard(done)
            self._events -= events
            self._room.set()

        task.add_done_callback(finished)
        return task

    async def drain(self, timeout_s: float) -> None:
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)
