"""Does a server answer? One metadata request to Kafka, `RETURN 1` over Bolt. Used by the worker's readiness
probe and by the local-server launcher alike."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Mapping

from .settings import Settings

if TYPE_CHECKING:
    from kafka import KafkaConsumer
    from neo4j import Driver


def kafka_answers(bootstrap: str, **client_options: Any) -> bool:
    return kafka_problem(bootstrap, **client_options) is None


def kafka_problem(bootstrap: str, **client_options: Any) -> str | None:
    """None when the broker answers a metadata request, else why not (one line). A client of its own, closed."""
    probe = KafkaProbe(bootstrap, client_options, connections_max_idle_ms=5000)
    try:
        return probe.problem()
    finally:
        probe.close()


def return_one(settings: Settings, connection_timeout_s: float) -> None:
    """`RETURN 1` on the graph server, once (no driver retries): raises what the server or the driver says."""
    probe = BoltProbe(settings, connection_timeout_s)
    try:
        probe.return_one()
    finally:
        probe.close()


def bolt_answers(settings: Settings) -> bool:
    return bolt_problem(settings) is None


def bolt_problem(settings: Settings, probe: BoltProbe | None = None) -> str | None:
    """None when the graph server runs `RETURN 1` (execute_query would retry and hide readiness), else why not;
    with a driver of its own unless `probe` (a kept one) is given."""
    from neo4j.exceptions import AuthError, DriverError, Neo4jError

    try:
        if probe is None:
            return_one(settings, connection_timeout_s=2)
        else:
            probe.return_one()
        return None
    except AuthError as exc:
        if not port_open(settings.bolt_uri.split("://", 1)[1].split("/")[0]):  # a server going down may say so
            return f"no graph server accepts connections at {settings.bolt_uri}"
        return f"the graph server refused the credentials: check STREAMREC_NEO4J_USER / _PASSWORD ({exc.code})"
    except (Neo4jError, DriverError, OSError) as exc:
        return _described(exc)


class KafkaProbe:
    """A metadata request to the broker with a client kept between probes: the worker's readiness probe runs every
    few seconds, and a new client each time (connections, API version checks) cost more of the worker's CPU than
    the probe itself. After a failure the client is closed, so the next probe connects afresh."""

    def __init__(self, bootstrap: str, client_options: Mapping[str, Any], **consumer_options: Any):
        self.bootstrap, self.options = bootstrap, {**client_options, **consumer_options}
        self._consumer: KafkaConsumer | None = None

    def problem(self) -> str | None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        if not any(port_open(address) for address in self.bootstrap.split(",")):
            # the client would retry a refused connection with back-off (seconds) before answering
            self.close()
            return f"no broker accepts connections at {self.bootstrap}"
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=3000, enable_auto_commit=False, **self.options
                )
            self._consumer.topics()  # a request to the cluster each time, not the client's cached metadata
            return None
        except (KafkaError, OSError, ValueError) as exc:
            self.close()
            return _described(exc)

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()


class BoltProbe:
    """`RETURN 1` with a driver kept between probes (a connection and a login each time, otherwise, on the worker
    and on the graph server); closed after a failure, so the next probe connects and logs in afresh."""

    def __init__(self, settings: Settings, connection_timeout_s: float = 2.0):
        self.settings, self.connection_timeout_s = settings, connection_timeout_s
        self._driver: Driver | None = None

    def return_one(self) -> None:
        from neo4j import WRITE_ACCESS, GraphDatabase

        s = self.settings
        if self._driver is None:
            self._driver = GraphDatabase.driver(
                s.bolt_uri,
                auth=(s.neo4j_user, s.neo4j_password),
                connection_timeout=self.connection_timeout_s,
                max_transaction_retry_time=0,
            )
        try:
            # a write-mode session (the driver's default, said here because the start-up check relies on it)
            with self._driver.session(database=s.database, default_access_mode=WRITE_ACCESS) as session:
                session.run("RETURN 1 AS ok").single()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            driver.close()


def graph_refusal(settings: Settings) -> str | None:
    """Why the graph server refuses this worker for good (the credentials, the database), in one line; None when
    it accepts it, and when it does not answer at all (a server still starting or down: the stage loop retries).
    One attempt: Neo4j rate-limits failed logins, which would lock out every worker with the same user."""
    return graph_check(settings)[0]


def graph_check(settings: Settings, connection_timeout_s: float = 5.0) -> tuple[str | None, str | None]:
    """(why the graph server refuses this worker for good, why it cannot take its writes now): both None when a
    write-mode session runs `RETURN 1` (the driver sends a write-mode session to a cluster's writer, so the
    worker's writes would go there too). One attempt, as graph_refusal."""
    from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError

    try:
        return_one(settings, connection_timeout_s=connection_timeout_s)
    except AuthError as exc:
        return (
            f"the graph server at {settings.bolt_uri} refused the credentials of user {settings.neo4j_user!r} "
            f"({exc.code}): set STREAMREC_NEO4J_USER / STREAMREC_NEO4J_PASSWORD to an account it accepts"
        ), None
    except ClientError as exc:
        if exc.code and "DatabaseNotFound" in exc.code:
            return (
                f"the graph server at {settings.bolt_uri} has no database {settings.database!r}: create it, or set "
                "STREAMREC_NEO4J_DATABASE to one it has"
            ), None
        return None, _described(exc)
    except (Neo4jError, DriverError, OSError) as exc:
        return None, _described(exc)
    return None, None


def _described(error: BaseException) -> str:
    from graph_store.errors import one_line

    return f"{type(error).__name__}: {one_line(error, limit=300)}"


def port_open(address: str, timeout_s: float = 1.0) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
