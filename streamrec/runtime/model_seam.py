"""The seam between a worker and its model process: every request the worker may make, and what comes back.

The host implements ModelService directly (model_host.py); the client (model_client.py) has one coroutine per
request that sends it down the pipe. The host answers only the requests declared here, and
tests/streamrec/runtime/test_model_seam.py checks that both sides declare each of them with the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stream.events import Interaction, Item


@dataclass
class ModelInfo:
    name: str
    version: str
    refresh_is_idempotent: bool  # the state is a set of edges: seeing an event twice changes nothing
    device: str
    staleness: int = 0
    gpu_memory_bytes: int | None = None
    version_name: str | None = (
        None  # the version folder served (streamrec/runtime/model_versions.py); None: the baseline
    )
    retention_cutoff: int | None = None  # edges before this event time are forgotten (None: none yet, or no retention)


@dataclass
class Refreshed:
    lists: list[tuple[str, bytes]]  # (user_id, list record) for every user of the batch
    seconds: dict[str, float]  # the seconds of each step (observe, rank)


class ModelService(Protocol):
    def warm_start(self) -> ModelInfo:
        """The serving model's state from the graph of record, which the host reads itself a page at a time (the
        graph can be larger than any message, and the worker's event loop stays free meanwhile)."""

    def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> Refreshed:
        """Folds `fresh` in; the lists of every user of `events`."""

    def observe(self, events: list[Interaction]) -> None:
        """Folds in events of other workers' partitions (stream/replica.py): no lists."""

    def observe_items(self, items: list[Item]) -> None: ...

    def lookup(self, user_id: str, k: int) -> bytes | None:
        """The user's list now, as the topic's record; None for a user never seen."""

    def sweep_stale(self, max_nodes: int) -> ModelInfo: ...

    def build_candidate(self, checkpoint: str) -> None:
        """Starts loading a newer checkpoint and rebuilding its state from the graph of record, beside the serving
        model."""

    def candidate_ready(self) -> bool:
        """False while building; True when built; raises what the build raised."""

    def promote_candidate(self) -> ModelInfo: ...


REQUESTS = tuple(name for name, value in vars(ModelService).items() if callable(value) and not name.startswith("_"))


class ModelHostDied(RuntimeError):
    pass


class ModelHostError(RuntimeError):
    """A request failed in the model process; `trace` is its traceback there (logged there at debug level)."""

    def __init__(self, message: str, trace: str):
        super().__init__(message)
        self.trace = trace


class CheckpointRefused(RuntimeError):
    """The model host refused to load the pinned checkpoint at start-up (the message says why, in one line)."""
