"""How long a worker has been unable to write to the graph server, and when it should leave its consumer group.

A worker that cannot write holds its partitions and processes nothing: the stage loop retries (stream/retries.py)
and acks nothing, correctly, but the partitions wait with it. Past STREAMREC_WRITE_STALL_LEAVE_S the worker
leaves the group (it stops, exit status `LEAVE_STATUS`), so that the group gives its partitions to a worker that
can write; what it did not write was not acked, and is delivered again to that worker. Its supervisor restarts it,
and it joins again only once the graph server takes writes (worker.wait_for_graph).

The clock runs from the start of the oldest graph operation that no success has followed: a write that fails
again and again, and a write that hangs (a network cut that drops packets leaves the driver waiting with no
error), are both a stall; a write that the server answers by refusing its records (GraphRejected: the records'
fault, sent to the dead letters) is not.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Callable, Iterator

from graph_store import GraphRejected
from graph_store.errors import one_line

# the exit status of a worker that left its group because it could not write: 2 is a set-up its supervisor cannot
# fix by restarting it (bad settings, credentials refused), 1 a crash; this one a restart is meant to follow
LEAVE_STATUS = 3


class WriteStall:
    """Fed by every graph operation of the worker (`with stall.attempt(): ...`); asked once a second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failing_since: float | None = None  # start of the first failed attempt not followed by a success
        self._running: dict[int, float] = {}  # attempts in progress that count while they run -> their start
        self._ids = itertools.count()
        self.failures = 0  # failed attempts since the last success
        self.error: str | None = None  # the last failure's, on one line

    @contextlib.contextmanager
    def attempt(self, hanging_counts: bool = True) -> Iterator[None]:
        """One graph operation. `hanging_counts=False` for a read that may take long on a large graph (the warm
        start's): only its failure counts, not the time it runs."""
        started, key = self._clock(), next(self._ids)
        if hanging_counts:
            self._running[key] = started
        try:
            yield
        except GraphRejected:  # the server answered: it refuses these records, not this worker
            raise
        except Exception as error:
            if self._failing_since is None:
                self._failing_since = started
            self.failures += 1
            self.error = f"{type(error).__name__}: {one_line(error, limit=300)}"
            raise
        else:
            self._failing_since, self.failures, self.error = None, 0, None
        finally:  # (cancelled at a stop: neither a failure nor a success)
            self._running.pop(key, None)

    def seconds(self) -> float:
        """How long this worker has been unable to write: 0 while its writes succeed (or take less than a tick)."""
        starts = list(self._running.values())
        if self._failing_since is not None:
            starts.append(self._failing_since)
        return max(0.0, self._clock() - min(starts)) if starts else 0.0

    def should_leave(self, limit_s: float) -> bool:
        """True once the stall has lasted `limit_s` (0: never)."""
        return limit_s > 0 and self.seconds() >= limit_s

    def describe(self) -> str:
        """What the operator reads in the line that says the worker leaves."""
        if self.failures:
            return f"{self.failures} failed attempts, the last: {self.error}"
        return "a write has not returned"
