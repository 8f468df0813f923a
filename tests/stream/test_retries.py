"""Retrying a stage: what is the records' fault is isolated and given up on, everything else waits; the log
gets one line per change of state, the metric one count per failed attempt."""

import asyncio
import logging

import pytest

from stream import metrics
from stream.retries import RecordsRejected, apply_isolating, retry_until_done

FAST = dict(first_delay_s=0.001, max_delay_s=0.002)


def retries(stage: str) -> float:
    return metrics.BATCH_RETRIES.labels(stage)._value.get()


def test_rejected_records_are_isolated_and_the_rest_applied_in_order():
    calls, applied = [], []
    bad = {13, 77}

    async def write(records):
        calls.append(list(records))
        if bad & set(records):
            raise RecordsRejected(f"refused {sorted(bad & set(records))}")
        applied.extend(records)
        return len(records)

    isolated = asyncio.run(apply_isolating("t_isolate", write, range(100), **FAST))
    assert [record for record, _ in isolated.rejected] == [13, 77]
    assert isolated.rejected[0][1] == "refused [13]"
    assert applied == [r for r in range(100) if r not in bad]  # in their order, each once
    assert sum(isolated.results) == 98
    assert len(calls) < 60  # about 2 x 3 attempts x log2(100) levels, not one call per record


def test_a_record_rejected_at_first_and_then_accepted_is_applied():
    attempts = []

    async def write(records):
        attempts.append(len(records))
        if len(attempts) < 3:
            raise RecordsRejected("not yet")
        return "ok"

    isolated = asyncio.run(apply_isolating("t_flaky", write, ["a", "b"], attempts=3, **FAST))
    assert (isolated.results, isolated.rejected, attempts) == (["ok"], [], [2, 2, 2])


def test_errors_that_are_not_the_records_fault_are_retried_until_done_and_logged_once(caplog):
    errors = [ConnectionError("refused")] * 5 + [TimeoutError("slow")] * 2
    before = retries("t_outage")

    async def write():
        if errors:
            raise errors.pop(0)
        return "written"

    with caplog.at_level(logging.INFO, logger="stream.retries"):
        assert asyncio.run(retry_until_done("t_outage", write, **FAST)) == "written"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("t_outage failing: ConnectionError: refused; retrying")
    assert lines[1] == "t_outage still failing after 6 attempts, now: TimeoutError: slow"
    assert lines[2].startswith("t_outage works again, after 7 failed attempts in ")
    assert retries("t_outage") - before == 7


def test_an_outage_is_never_given_up_on_even_with_isolation():
    outage = [OSError("down")] * 20

    async def write(records):
        if outage:
            raise outage.pop()
        return records

    isolated = asyncio.run(apply_isolating("t_long", write, [1, 2, 3], attempts=2, **FAST))
    assert (isolated.results, isolated.rejected) == ([[1, 2, 3]], [])


def test_cancellation_passes_through():
    async def scenario():
        async def never():
            raise OSError("down")

        task = asyncio.ensure_future(retry_until_done("t_cancel", never, **FAST))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
