"""The batching and lane logic on its own (pure asyncio; the real-server path is in tests/e2e)."""

import asyncio
import time

import pytest

from stream.batching import CoalescingLane, InFlight, Lane, MicroBatches


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_a_batch_is_taken_at_once_when_full_and_after_the_linger_otherwise():
    async def scenario():
        batches = MicroBatches(max_size=3, linger_s=0.2, max_pending=10)
        for k in range(5):
            await batches.put(k)
        started = time.monotonic()
        first = await batches.take()
        full_after = time.monotonic() - started
        second = await batches.take()  # these two waited already: no further linger
        second_after = time.monotonic() - started
        await batches.put(9)
        started = time.monotonic()
        third = await batches.take()
        return first, full_after, second, second_after, third, time.monotonic() - started

    first, full_after, second, second_after, third, lingered = run(scenario())
    assert (first, second, third) == ([0, 1, 2], [3, 4], [9])
    assert full_after < 0.1 and second_after < 0.1
    assert 0.15 <= lingered < 1.0


def test_take_waits_for_the_first_event_and_put_waits_for_room():
    async def scenario():
        batches = MicroBatches(max_size=2, linger_s=0.0, max_pending=2)
        taker = asyncio.ensure_future(batches.take())
        await asyncio.sleep(0.05)
        assert not taker.done()
        await batches.put("a")
        assert await taker == ["a"]
        await batches.put(1)
        await batches.put(2)
        blocked = asyncio.ensure_future(batches.put(3))
        await asyncio.sleep(0.05)
        assert not blocked.done() and len(batches) == 2  # full: the agent stops buffering
        assert await batches.take() == [1, 2]
        await blocked
        return await batches.take()

    assert run(scenario()) == [3]


def test_a_lane_runs_actions_one_at_a_time_in_submission_order_even_after_a_failure():
    async def scenario():
        lane, log = Lane(), []

        def action(name, delay, fail=False):
            async def work():
                log.append(f"start {name}")
                await asyncio.sleep(delay)
                log.append(f"end {name}")
                if fail:
                    raise RuntimeError(name)
                return name

            return work

        slow = lane.submit(action("slow", 0.1))
        failing = lane.submit(action("failing", 0.0, fail=True))
        fast = lane.submit(action("fast", 0.0))
        results = await asyncio.gather(slow, failing, fast, return_exceptions=True)
        return log, results

    log, results = run(scenario())
    assert log == ["start slow", "end slow", "start failing", "end failing", "start fast", "end fast"]
    assert results[0] == "slow" and isinstance(results[1], RuntimeError) and results[2] == "fast"


def test_a_coalescing_lane_writes_what_arrived_during_a_write_in_one_later_write():
    async def scenario():
        calls, release = [], asyncio.Event()

        async def write(items):
            calls.append(list(items))
            if items[0] == "a":  # the first write is slow: b, c and d arrive meanwhile
                await release.wait()
            if "fail" in items:
                raise RuntimeError("sink down")
            return f"wrote {len(items)}"

        lane = CoalescingLane(write)
        first = lane.submit(["a"])
        await asyncio.sleep(0.01)
        second, third = lane.submit(["b", "c"]), lane.submit(["d"])
        release.set()
        results = await asyncio.gather(first, second, third)
        failed = lane.submit(["fail"])
        with pytest.raises(RuntimeError):
            await failed
        after = await lane.submit(["e"])  # a failed write does not stop the lane
        return calls, results, after

    calls, results, after = run(scenario())
    assert calls == [["a"], ["b", "c", "d"], ["fail"], ["e"]]
    assert results == ["wrote 1", "wrote 3", "wrote 3"] and after == "wrote 1"


def test_a_coalescing_lane_finishes_a_write_whose_waiter_gave_up_and_goes_on():
    async def scenario():
        written = []

        async def write(items):
            await asyncio.sleep(0.05)
            written.extend(items)
            return len(items)

        lane = CoalescingLane(write)
        abandoned = lane.submit(["a"])
        await asyncio.sleep(0.01)
        abandoned.cancel()  # e.g. a stopping worker cancelled the batch waiting on it
        return await lane.submit(["b"]), written

    assert run(scenario()) == (1, ["a", "b"])


def test_a_lingering_lane_gathers_batches_into_one_write_until_the_time_or_the_size_is_reached():
    async def scenario():
        calls = []

        async def write(items):
            calls.append(list(items))
            return len(items)

        lane = CoalescingLane(write, linger_s=1.0, max_items=5)
        first = lane.submit(["a"])
        await asyncio.sleep(0.05)
        second = lane.submit(["b"])
        assert not first.done()  # still gathering: the first item waited 50 ms of 1,000
        assert await first == 2 and await second == 2
        full = [lane.submit([f"x{k}"]) for k in range(5)]  # the size ends the wait at once
        started = time.monotonic()
        await asyncio.gather(*full)
        return calls, time.monotonic() - started

    calls, waited = run(scenario())
    assert calls == [["a", "b"], [f"x{k}" for k in range(5)]]
    assert waited < 0.5  # (the linger was 1 s)


def test_in_flight_counts_events_and_lets_a_large_batch_start_alone():
    async def scenario():
        in_flight, release = InFlight(10), asyncio.Event()

        async def batch():
            await release.wait()

        await in_flight.start(batch(), 6)
        second = asyncio.ensure_future(in_flight.start(batch(), 6))
        await asyncio.sleep(0.05)
        blocked = not second.done()  # 12 events would be in flight
        release.set()
        await second
        await in_flight.drain(5)
        huge = await in_flight.start(batch(), 50)  # nothing in flight: a batch larger than the bound runs alone
        await huge
        return blocked

    assert run(scenario())


def test_in_flight_bounds_unfinished_batches_and_drain_waits_for_them():
    async def scenario():
        in_flight, release, finished = InFlight(2), asyncio.Event(), []

        async def batch(name):
            await release.wait()
            finished.append(name)

        await in_flight.start(batch(1))
        await in_flight.start(batch(2))
        third = asyncio.ensure_future(in_flight.start(batch(3)))
        await asyncio.sleep(0.05)
        assert not third.done()  # two unfinished: the batch loop waits
        release.set()
        await third
        await in_flight.drain(5)
        return finished

    assert run(scenario()) == [1, 2, 3]


@pytest.mark.parametrize("size", [1, 7])
def test_every_event_is_taken_exactly_once_in_order(size):
    async def scenario():
        batches, taken = MicroBatches(max_size=size, linger_s=0.001, max_pending=3 * size), []

        async def producer():
            for k in range(200):
                await batches.put(k)
                if k % 13 == 0:
                    await asyncio.sleep(0)

        feeding = asyncio.ensure_future(producer())
        while len(taken) < 200:
            batch = await batches.take()
            assert 1 <= len(batch) <= size
            taken.extend(batch)
        await feeding
        return taken

    assert run(scenario()) == list(range(200))
