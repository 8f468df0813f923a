"""The local-server launcher's pure parts: which servers a stack runs, what a missing Java says, the jar cache
key, the version lines read from a server's log."""

import pytest

from streamrec.tools.servers import local_services
from streamrec.tools.servers.apache import POM, check_java, jar_root
from streamrec.tools.servers.base import ServiceError, last_log_match
from streamrec.runtime.settings import load_settings


def test_each_stack_runs_its_own_servers_and_none_for_external_ones(tmp_path):
    names = lambda env: [s.name for s in local_services(load_settings(env, cwd=tmp_path))]  # noqa: E731
    assert names({}) == ["kafka", "neo4j"]
    assert names({"STREAMREC_LOCAL_STACK": "light"}) == ["tansu", "arcadedb"]
    assert names({"STREAMREC_KAFKA_BOOTSTRAP": "k:9092"}) == ["neo4j"]
    assert names({"STREAMREC_NEO4J_URI": "bolt://g:7687", "STREAMREC_NEO4J_PASSWORD": "x"}) == ["kafka"]


def test_without_java_the_message_names_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    with pytest.raises(ServiceError) as error:
        check_java()
    message = str(error.value)
    assert "Java >= 17" in message and "Maven" in message and "STREAMREC_LOCAL_STACK=light" in message


def test_too_old_a_java_is_refused_with_the_same_advice(tmp_path, monkeypatch):
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(ServiceError, match="is Java 11; Apache Kafka 4 and Neo4j 5.26 need Java >= 17"):
        check_java()


def test_the_jar_cache_is_keyed_by_the_pinned_pom(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMREC_JARS_DIR", str(tmp_path))
    root = jar_root()
    assert root.parent == tmp_path and len(root.name) == 16
    assert (
        "<artifactId>kafka_2.13</artifactId>" in POM.read_text() and "<artifactId>neo4j</artifactId>" in POM.read_text()
    )


def test_versions_come_from_the_servers_own_start_up_lines(tmp_path):
    log = tmp_path / "log"
    log.write_text(
        "[2026-12-02 03:05:03,092] INFO Kafka version: 4.1.1 (org.apache.kafka.common.utils.AppInfoParser)\n"
        "noise\n[2026-12-02 04:05:03,092] INFO Kafka version: 4.1.2 (org.apache.kafka.common.utils.AppInfoParser)\n"
    )
    assert last_log_match(log, "Kafka version: ") == "4.1.2"  # the newest start wins
    assert last_log_match(log, "ArcadeDB Server v") is None
    assert last_log_match(tmp_path / "missing", "x") is None


def test_a_java_argument_file_passes_any_password_and_only_its_owner_can_read_it(tmp_path):
    import os
    import subprocess

    from streamrec.tools.servers.base import java_argument_file

    password = "a b\"c\\d'e $HOME ;x"
    argument = java_argument_file(tmp_path / "secret.args", [f"-Dstreamrec.test={password}"])
    assert argument == f"@{tmp_path / 'secret.args'}" and password not in argument
    assert os.stat(tmp_path / "secret.args").st_mode & 0o777 == 0o600
    shown = subprocess.run(
        [check_java(), argument, "-XshowSettings:properties", "-version"], capture_output=True, text=True, timeout=60
    ).stderr
    assert f"streamrec.test = {password}\n" in shown


def test_a_taken_port_stops_the_start_with_its_number_and_variable_and_the_controller_takes_a_free_one(tmp_path):
    import socket

    from streamrec.tools.servers.apache import KafkaServer, Neo4jServer
    from streamrec.tools.servers.base import free_port

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        for variable, server in (
            ("STREAMREC_LOCAL_KAFKA_PORT", KafkaServer),
            ("STREAMREC_LOCAL_KAFKA_CONTROLLER_PORT", KafkaServer),
            ("STREAMREC_LOCAL_BOLT_PORT", Neo4jServer),
        ):
            free = {name: str(free_port()) for name in ("STREAMREC_LOCAL_KAFKA_PORT", "STREAMREC_LOCAL_BOLT_PORT")}
            env = {"STREAMREC_HOME": str(tmp_path), **free, variable: str(taken)}  # only `variable`'s port is taken
            settings = load_settings(env, cwd=tmp_path)
            with pytest.raises(ServiceError, match=rf"port {taken} \({variable}\) is in use by another process"):
                server(settings).check_ports()  # what start() runs before it launches anything
        # unset, the controller's port is a free one, kept for the next start while it stays free
        settings = load_settings({"STREAMREC_HOME": str(tmp_path)}, cwd=tmp_path)
        first = KafkaServer(settings)
        first.properties()
        assert (
            first.controller_port != taken and f"CONTROLLER://127.0.0.1:{first.controller_port}" in first.properties()
        )
        again = KafkaServer(settings)
        again.properties()
        assert again.controller_port == first.controller_port
