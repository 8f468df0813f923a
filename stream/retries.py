"""How a failing stage is retried, and when records are given up on (sent to the dead letters) instead.

A stage's sink says which kind of failure it met by what it raises:
- `RecordsRejected`: the sink refuses these records and always will (a type or value error caused by the data).
  After `REJECTED_ATTEMPTS` tries the records are halved, and halved again, until each rejected record stands
  alone; those go to the dead letters with the sink's reason, the others are applied, in their order (delta
  debugging, Zeller & Hildebrandt, TSE 2002, in its simplest form: O(r log n) tries for r bad records in n).
- anything else is not the records' fault (a server down or restarting, a leader change, a timeout, bad
  credentials): retried with back-off until it succeeds, however long that takes; the batch waits, unacked.

An operator reads one line per change of state: the first failure of a stage, a different error while it keeps
failing, and its recovery with the count and duration; every attempt is counted in streamrec_batch_retries_total.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

from . import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

REJECTED_ATTEMPTS = 3  # a rejection is tried this often (with back-off) before the records are split


class RecordsRejected(Exception):
    """Raised by a sink: these records can never be applied; the message is the reason."""


@dataclass
class _Failing:
    since: float
    attempts: int
    error: str


_failing: dict[str, _Failing] = {}  # stage -> its current run of failures (the event loop is single-threaded)


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _failed(stage: str, error: BaseException, delay_s: float) -> None:
    metrics.BATCH_RETRIES.labels(stage).inc()
    text, state = _describe(error), _failing.get(stage)
    if state is None:
        _failing[stage] = _Failing(time.monotonic(), 1, text)
        log.warning(
            "%s failing: %s; retrying with back-off (at most %.0f s apart) until it succeeds", stage, text, delay_s
        )
        return
    state.attempts += 1
    if text != state.error:
        state.error = text
        log.warning("%s still failing after %d attempts, now: %s", stage, state.attempts, text)


def _succeeded(stage: str) -> None:
    state = _failing.pop(stage, None)
    if state is not None:
        log.warning(
            "%s works again, after %d failed attempts in %.1f s", stage, state.attempts, time.monotonic() - state.since
        )


async def retry_until_done(
    stage: str,
    action: Callable[[], Awaitable[R]],
    *,
    first_delay_s: float = 0.2,
    max_delay_s: float = 10.0,
    rejected_attempts: int | None = None,
) -> R:
    """Runs `action` until it succeeds. With `rejected_attempts`, a RecordsRejected that many times in a row is
    raised to the caller. Cancellation (shutdown) passes through; the batch is then not acked."""
    delay, rejections = first_delay_s, 0
    while True:
        try:
            result = await action()
        except asyncio.CancelledError:
            raise
        except RecordsRejected as exc:
            if rejected_attempts is None:
                _failed(stage, exc, max_delay_s)
            else:  # the caller isolates the rejected records and logs them: no failing/recovered lines here
                metrics.BATCH_RETRIES.labels(stage).inc()
                rejections += 1
                if rejections >= rejected_attempts:
                    raise
        except Exception as exc:  # not the records' fault: wait and try again
            rejections = 0
            _failed(stage, exc, max_delay_s)
        else:
            _succeeded(stage)
            return result
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)


@dataclass
class Isolated(Generic[T, R]):
    results: list[R]  # of each successful call, in record order
    rejected: list[tuple[T, str]]  # each record that was rejected on its own, with the sink's reason


async def apply_isolating(
    stage: str,
    action: Callable[[list[T]], Awaitable[R]],
    records: Sequence[T],
    attempts: int = REJECTED_ATTEMPTS,
    **delays: float,
) -> Isolated[T, R]:
    """`action(records)`, retried until done; when the records are rejected, the rejected ones are isolated.
    `delays`: retry_until_done's back-off."""
    batch = list(records)
    try:
        return Isolated(
            [await retry_until_done(stage, lambda: action(batch), rejected_attempts=attempts, **delays)], []
        )
    except RecordsRejected as exc:
        if len(batch) == 1:
            return Isolated([], [(batch[0], str(exc))])
    middle = len(batch) // 2
    first = await apply_isolating(stage, action, batch[:middle], attempts, **delays)
    second = await apply_isolating(stage, action, batch[middle:], attempts, **delays)
    return Isolated(first.results + second.results, first.rejected + second.rejected)
