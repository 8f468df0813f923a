"""The worker's side of the model process (the host is model_host.py, the requests are declared in model_seam.py)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stream.events import Interaction, Item

from .model_host import serve
from .model_seam import CheckpointRefused, ModelHostDied, ModelHostError, ModelInfo, Refreshed
from .settings import Settings

log = logging.getLogger(__name__)


class ModelClient:
    """Starts the host process and sends it the seam's requests; one at a time, each awaited on a thread that
    waits on the pipe. One coroutine per request, with the host's parameters."""

    def __init__(self, settings: Settings, checkpoint: Path | None):
        context = multiprocessing.get_context("spawn")  # a fork would copy the event loop's threads and sockets
        self._connection, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child, settings, checkpoint), name="streamrec-model", daemon=True
        )
        self.process.start()
        child.close()
        self._calls = ThreadPoolExecutor(1, thread_name_prefix="model-pipe")
        try:
            self.info: ModelInfo = self._answer()  # the host's first answer: its ModelInfo
        except ModelHostError as failed:  # the model could not be loaded: its traceback is the operator's clue
            log.error("the model process could not start:\n%s", failed.trace)
            raise

    # -- the requests -------------------------------------------------------------------------------
    async def warm_start(self) -> ModelInfo:
        answer: ModelInfo = await self._request("warm_start")
        return answer

    async def refresh(self, events: list[Interaction], fresh: list[Interaction]) -> Refreshed:
        answer: Refreshed = await self._request("refresh", events, fresh)
        return answer

    async def observe(self, events: list[Interaction]) -> None:
        await self._request("observe", events)

    async def observe_items(self, items: list[Item]) -> None:
        await self._request("observe_items", items)

    async def lookup(self, user_id: str, k: int) -> bytes | None:
        answer: bytes | None = await self._request("lookup", user_id, k)
        return answer

    async def sweep_stale(self, max_nodes: int) -> ModelInfo:
        answer: ModelInfo = await self._request("sweep_stale", max_nodes)
        return answer

    async def build_candidate(self, checkpoint: str) -> None:
        await self._request("build_candidate", checkpoint)

    async def candidate_ready(self) -> bool:
        answer: bool = await self._request("candidate_ready")
        return answer

    async def promote_candidate(self) -> ModelInfo:
        answer: ModelInfo = await self._request("promote_candidate")
        return answer

    def lookup_from_thread(self, user_id: str, k: int, timeout_s: float = 10.0) -> bytes | None:
        """`lookup` from a thread other than the event loop's (the HTTP server's); it queues behind the loop's
        requests on the one pipe."""
        answer: bytes | None = self._calls.submit(self._send, "lookup", (user_id, k)).result(timeout_s)
        return answer

    # -- the pipe ---------------------------------------------------------------------------------------
    async def _request(self, name: str, *args: Any) -> Any:
        """The host's answer to the request `name` (its type is the seam's return type for it)."""
        return await asyncio.get_running_loop().run_in_executor(self._calls, self._send, name, args)

    def _send(self, name: str, args: tuple[Any, ...]) -> Any:
        try:
            self._connection.send((name, args))
        except (BrokenPipeError, OSError) as exc:
            raise ModelHostDied(f"the model process exited (code {self.process.exitcode})") from exc
        return self._answer()

    def _answer(self) -> Any:
        try:
            status, value = self._connection.recv()
        except (EOFError, OSError) as exc:
            raise ModelHostDied(f"the model process exited (code {self.process.exitcode})") from exc
        if status == "refused":
            raise CheckpointRefused(value)
        if status == "error":
            what, trace = value
            raise ModelHostError(f"the model process failed: {what}", trace)
        return value

    def close(self) -> None:
        self._connection.close()
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
