"""Does a server answer? One metadata request to Kafka, `RETURN 1` over Bolt. Used by the worker's readiness
probe and by the local-server launcher alike."""
from __future__ import annotations

import socket


def kafka_answers(bootstrap: str, **client_options) -> bool:
    """True when the broker answers a metadata request."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    if not any(port_open(address) for address in bootstrap.split(",")):
        return False  # the client would retry a refused connection with back-off (seconds) before answering
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000, enable_auto_commit=False,
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


def bolt_answers(settings) -> bool:
    """True when the graph server runs `RETURN 1` (execute_query would retry and hide readiness)."""
    from neo4j import GraphDatabase
    from neo4j.exceptions import DriverError, Neo4jError

    try:
        with GraphDatabase.driver(settings.bolt_uri, auth=(settings.neo4j_user, settings.neo4j_password),
                                  connection_timeout=2, max_transaction_retry_time=0) as driver:
            with driver.session(database=settings.database) as session:
                return session.run("RETURN 1 AS ok").single()["ok"] == 1
    except (Neo4jError, DriverError, OSError):
        return False


def port_open(address: str, timeout_s: float = 1.0) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
