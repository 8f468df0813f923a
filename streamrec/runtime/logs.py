"""One log format for every streamrec process: the CLI, the worker's event loop (Faust's loggers included) and
its model host. STREAMREC_LOG_FORMAT=text (default) is for people; json writes one JSON object per line
(time, level, logger, process, pid, message, exception) for log shippers.

The `process` field names the process's role ("event_loop", "model_host", or the CLI command), as the
`process` label of the streamrec_process_* metrics does.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(role)s] %(name)s: %(message)s"
# client libraries log every connection at INFO; their warnings and errors still show
CHATTY_LIBRARIES = ("kafka", "aiokafka", "neo4j")
# Client-library records that a user can do nothing about, demoted to DEBUG: logger -> parts of the message.
# - The Kafka clients log these while a fresh broker elects a group's coordinator (it creates
#   __consumer_offsets on the group's first use) and retry until it has one. A coordinator that never comes
#   shows instead as no partitions assigned (consumer lag) and a broker that is down in /readyz and the log.
# - kafka-python times each step of its own I/O thread (the admin client, the replica feed's consumer, not
#   the worker's event loop) against 100 ms and blames "a tight sync loop" on a busy machine.
LIBRARY_NOISE = {
    "aiokafka.consumer.group_coordinator": (
        "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailable",
        "Marking the coordinator dead",
    ),
    "kafka.coordinator": ("Marking the coordinator dead",),
    "kafka.net.selector": ("threshold). It is blocking the event loop",),
}


# libraries whose repeated records (the same logger and message template) are logged once a window: a client
# retrying a server that is down logs the same line every 100 ms (3,028 lines in a 27 s broker outage, measured)
REPEATING_LIBRARIES = ("kafka", "aiokafka", "neo4j", "faust", "mode")
REPEAT_WINDOW_S = 60.0


class JsonFormatter(logging.Formatter):
    """One line of JSON per record; a traceback is a field of it, not lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": getattr(record, "role", None),
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Role(logging.Filter):
    """Stamps each record with the process's role, for both formats."""

    def __init__(self, role: str):
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        setattr(record, "role", self.role)  # an attribute of our own: TEXT_FORMAT's %(role)s
        return True


class _Demoted(logging.Filter):
    """Demotes one library logger's records that hold any of `parts` to DEBUG (see LIBRARY_NOISE)."""

    def __init__(self, parts: tuple[str, ...]):
        super().__init__()
        self.parts = parts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(part in message for part in self.parts):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class _Repeats(logging.Filter):
    """One line per change of state for the client libraries: a record whose logger and message template were
    logged less than `window_s` ago is dropped and counted; the next one after the window says how many were."""

    def __init__(self, prefixes: tuple[str, ...] = REPEATING_LIBRARIES, window_s: float = REPEAT_WINDOW_S):
        super().__init__()
        self.prefixes, self.window_s = prefixes, window_s
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # (logger, template) -> (logged at, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes) or record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        logged_at, dropped = self._seen.get(key, (float("-inf"), 0))
        if record.created - logged_at < self.window_s:
            self._seen[key] = (logged_at, dropped + 1)
            return False
        if dropped:
            record.msg, record.args = (
                f"{record.getMessage()} ({dropped} more like it in the last {self.window_s:.0f} s)",
                None,
            )
        self._seen[key] = (record.created, 0)
        return True


def configure_logging(level: str, log_format: str, role: str, stream: TextIO | None = None) -> logging.Handler:
    """The root logger's one handler, on stderr by default; replaces any earlier configuration (the worker's
    flags may change the level the CLI started with). Python warnings go through it too."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_Role(role))
    handler.addFilter(_Repeats())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in CHATTY_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    for name, parts in LIBRARY_NOISE.items():
        library = logging.getLogger(name)
        if not any(isinstance(f, _Demoted) for f in library.filters):
            library.addFilter(_Demoted(parts))
    logging.captureWarnings(True)
    return handler
