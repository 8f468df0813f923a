"""The worker's HTTP endpoint: /metrics for Prometheus, /healthz (liveness), /readyz (readiness) and
GET /recommendations/{user_id}[?k=N] (one user's list, computed now from the worker's state).

- /healthz is 200 while the worker's event loop keeps ticking (a stuck loop gets the pod restarted).
- /readyz is 200 when the broker and the graph server answered the last probe, the loop is alive and the
  model's state is loaded from the graph (`model_loaded`); 503 with the reason otherwise (the pod is taken out of service but not restarted).
  Its body also names the model served (`served`: model, model_version, model_version_name).
The probes of the servers run in a background thread every few seconds, so a request never waits on them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stream.events import normal_id

from .probes import BoltProbe, KafkaProbe, bolt_problem
from .settings import Settings

log = logging.getLogger(__name__)

RECOMMENDATIONS = "/recommendations/"
MAX_K = 1000  # as STREAMREC_TOP_K
ROUTED = "routed"  # set on a redirect: the worker it reaches answers itself (an assignment in flux never loops)


class Health:
    def __init__(
        self,
        settings: Settings,
        model_loaded: Callable[[], bool] = lambda: True,
        probe_interval_s: float = 5.0,
        stuck_after_s: float = 30.0,
        lookup: Callable[[str, int], bytes | None] | None = None,
        owner_of: Callable[[str], str | None] = lambda user_id: None,
        served: Callable[[], dict[str, str | None]] = dict,
    ):
        """`lookup(user_id, k)`: the user's list record, or None for a user the model has never seen.
        `owner_of(user_id)`: the HTTP URL of the worker that owns the user's partition when it is another one.
        `served()`: what /readyz says of the model served, beside the readiness checks."""
        self.settings = settings
        self.model_loaded = model_loaded
        self.served = served
        self.lookup = lookup
        self.owner_of = owner_of
        self._routing_failed = False  # said once in the log
        self.probe_interval_s = probe_interval_s
        self.stuck_after_s = stuck_after_s
        self.last_tick = time.monotonic()
        self.broker_ok = False
        self.graph_ok = False
        self._down_since: dict[str, float] = {}
        self._stop = threading.Event()
        self._kafka = KafkaProbe(settings.bootstrap, settings.kafka_client_options())
        self._bolt = BoltProbe(settings)

    def tick(self) -> None:
        """Called from the worker's event loop (a Faust timer)."""
        self.last_tick = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last_tick < self.stuck_after_s

    def probe_once(self) -> None:
        s = self.settings
        self.broker_ok = self._note("the Kafka broker", self._kafka.problem())
        self.graph_ok = self._note("the graph server", bolt_problem(s, self._bolt))

    def _note(self, server: str, problem: str | None) -> bool:
        """Logs a change of state once (a server stopping, coming back), not every probe."""
        now = time.monotonic()
        if problem is not None and server not in self._down_since:
            self._down_since[server] = now
            log.warning("not ready: %s does not answer (%s)", server, problem)
        elif problem is None and server in self._down_since:
            log.warning("%s answers again, after %.0f s", server, now - self._down_since.pop(server))
        return problem is None

    def readiness(self) -> tuple[bool, dict[str, bool]]:
        status = {
            "broker": self.broker_ok,
            "graph": self.graph_ok,
            "event_loop": self.alive,
            "model_loaded": bool(self.model_loaded()),
        }
        return all(status.values()), status

    def _probe_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe_once()
            except Exception:  # a probe must never kill the thread
                log.exception("health probe failed")
                self.broker_ok = self.graph_ok = False
            self._stop.wait(self.probe_interval_s)
        self._kafka.close()
        self._bolt.close()

    def recommendations(self, raw_path: str) -> tuple[int, bytes | dict[str, object] | str]:
        """(status, the record | a JSON reason | the owner's URL) for GET /recommendations/{user_id}?k=N; never
        raises. A user of another worker's partition is redirected to that worker (307), whose state has the user's
        own latest events first; every worker's model follows every partition, so any answer converges."""
        parts = urlsplit(raw_path)
        try:
            user = unquote(parts.path[len(RECOMMENDATIONS) :], errors="strict")
        except UnicodeDecodeError:
            return 400, {"error": "the user id is not percent-encoded UTF-8"}
        user, problem = normal_id(user)
        if not user or problem:
            return 400, {"error": f"user_id {problem or 'is missing'}", "user_id": user}
        query = parse_qs(parts.query)
        k_values = query.get("k", [str(self.settings.top_k)])
        if len(k_values) != 1 or not k_values[0].isdigit() or not 1 <= int(k_values[0]) <= MAX_K:
            return 400, {"error": f"k must be one whole number from 1 to {MAX_K}", "k": k_values}
        owner = None if ROUTED in query else self._owner(user)
        if owner is not None:
            return 307, f"{owner}{parts.path}?k={k_values[0]}&{ROUTED}=1"
        if not self.model_loaded():
            return 503, {"error": "the model's state is not loaded yet", "user_id": user}
        try:
            if self.lookup is None:
                raise LookupError("this endpoint was started without lookups")
            record = self.lookup(user, int(k_values[0]))
        except Exception as exc:  # the model process is busy past the timeout, or gone
            log.warning("lookup of %r failed: %s: %s", user, type(exc).__name__, exc)
            return 503, {"error": f"the model could not answer now ({type(exc).__name__})", "user_id": user}
        if record is None:
            return 404, {"error": "unknown user: no event of this user has reached this worker", "user_id": user}
        return 200, record

    def _owner(self, user: str) -> str | None:
        try:
            return self.owner_of(user)
        except Exception as exc:  # this worker can answer too (its model follows every partition)
            if not self._routing_failed:
                self._routing_failed = True
                log.warning(
                    "cannot find which worker owns a user (%s: %s): answering lookups here",
                    type(exc).__name__,
                    exc,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
            return None

    def serve(self, host: str, port: int) -> ThreadingHTTPServer | None:
        """Starts the probes and the HTTP server in daemon threads; port 0 disables the endpoint."""
        threading.Thread(target=self._probe_forever, name="health-probes", daemon=True).start()
        if not port:
            return None
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    alive = health.alive
                    self._json(200 if alive else 503, {"alive": alive})
                elif path == "/readyz":
                    ready, status = health.readiness()
                    self._json(200 if ready else 503, {"ready": ready, **status, **health.served()})
                elif path.startswith(RECOMMENDATIONS) and health.lookup is not None:
                    code, body = health.recommendations(self.path)
                    if isinstance(body, str):  # 307: the owner's URL
                        self.send_response(307)
                        self.send_header("Location", body)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif isinstance(body, bytes):
                        self._send(code, body, "application/json")
                    else:
                        self._json(code, body)
                else:
                    self._json(
                        404,
                        {
                            "error": "not found",
                            "paths": ["/metrics", "/healthz", "/readyz", RECOMMENDATIONS + "{user_id}?k=N"],
                        },
                    )

            def _json(self, code: int, body: object) -> None:
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds would flood the log
                pass

        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RuntimeError(
                f"cannot serve metrics and health on {host}:{port} ({exc.strerror}): set "
                f"STREAMREC_METRICS_PORT to a free port, or 0 to disable the endpoint"
            ) from exc
        threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
        return server
