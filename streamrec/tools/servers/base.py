"""A local server process of ours: started in its own session, listening on 127.0.0.1 only, with its pid file
and log under <home>/services/<name>/; `stop` ends exactly the pid we recorded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ...runtime.settings import Settings


class ServiceError(RuntimeError):
    """A local server cannot be installed, started or reached; the message says what to do."""


class LocalService:
    name = "server"

    def __init__(self, settings: Settings):
        self.settings = settings

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
        return pid if alive(pid) else None

    # what a concrete server defines
    def ports(self) -> list[tuple[int, str]]:
        """(port, the variable that sets it) of every port the server will listen on."""
        return []

    def check_ports(self) -> None:
        """Raises ServiceError naming the first of the server's ports that another process holds (and the
        variable that sets it): the server itself would exit with a long stack trace in its log."""
        for port, variable in self.ports():
            if port_in_use(port):
                raise ServiceError(
                    f"{self.name} cannot start: port {port} ({variable}) is in use by another process: stop that "
                    f"process, or set {variable} to a free port"
                )

    def address(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        """The server's name and version as the running server reports them."""
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time set-up before the first start (configuration files, storage formatting)."""

    def environment(self) -> dict:
        return dict(os.environ)

    def start(self, timeout_s: float = 90.0) -> int:
        existing = self.pid()
        if existing is not None:
            self.wait_ready(timeout_s)
            return existing
        self.check_ports()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=self.folder,
                start_new_session=True,
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
        raise ServiceError(
            f"{self.name} did not answer on {self.address()} within {timeout_s:.0f} s; see {self.log_file}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (a port left in TIME_WAIT by a stopped server is free to the
    servers, which bind with SO_REUSEADDR, and so to this check)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
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


def java_argument_file(path: Path, arguments: list[str]) -> str:
    """Writes `arguments` for the Java launcher to read (`java @file`, quoted per its argument-file syntax) into a
    file only its owner can read, and returns the `@file` argument: a password in there stays off the process's
    command line, which every user of the machine can read (`ps`). The file must hold the main class and its
    arguments too when those carry the secret: the launcher expands argument files only before the main class."""

    def quoted(argument: str) -> str:
        escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write("\n".join(quoted(a) for a in arguments) + "\n")
    return f"@{path}"


def last_log_match(path: Path, marker: str) -> str | None:
    """The rest of the last log line that contains `marker` (servers print their version at start-up)."""
    try:
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if marker in line:
            return line.split(marker, 1)[1].split()[0].strip()
    return None
