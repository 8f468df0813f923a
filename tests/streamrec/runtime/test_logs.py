"""The one log format of every streamrec process (runtime/logs.py): text for people, one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
import re
import warnings

import pytest

from streamrec.runtime.logs import configure_logging


@pytest.fixture
def restore_logging():
    """configure_logging replaces the root handler: give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def lines_logged(log_format: str, role: str, emit) -> list[str]:
    stream = io.StringIO()
    configure_logging("info", log_format, role=role, stream=stream)
    emit()
    return stream.getvalue().splitlines()


def test_a_record_with_an_exception_is_one_line_of_json(restore_logging):
    def emit():
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logging.getLogger("streamrec.test").exception("could not %s", "parse")

    (line,) = lines_logged("json", "model_host", emit)
    entry = json.loads(line)
    assert {k: entry[k] for k in ("level", "logger", "process", "message")} == {
        "level": "ERROR",
        "logger": "streamrec.test",
        "process": "model_host",
        "message": "could not parse",
    }
    assert entry["exception"].startswith("Traceback") and "ValueError: bad\nvalue" in entry["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])
    assert isinstance(entry["pid"], int)


def test_the_text_format_names_level_process_and_logger(restore_logging):
    (line,) = lines_logged("text", "event_loop", lambda: logging.getLogger("faust.worker").warning("[^Worker]: Ready"))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING \[event_loop\] faust.worker: \[\^Worker\]: Ready", line
    ), line


def test_the_level_is_applied_and_an_earlier_configuration_replaced(restore_logging):
    first = io.StringIO()
    configure_logging("info", "text", role="cli", stream=first)
    second = io.StringIO()
    configure_logging("warning", "json", role="event_loop", stream=second)
    logging.getLogger("streamrec").info("hidden")
    logging.getLogger("streamrec").warning("shown")
    assert first.getvalue() == ""
    assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == ["shown"]


def test_python_warnings_go_through_the_same_format(restore_logging):
    def emit():
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("deprecated thing", UserWarning)

    (line,) = lines_logged("json", "cli", emit)
    assert json.loads(line)["logger"] == "py.warnings" and "deprecated thing" in json.loads(line)["message"]


def test_client_noise_a_user_cannot_act_on_is_not_logged_but_real_failures_are(restore_logging):
    """As the Kafka clients word them at a worker's start-up on a fresh broker and a busy machine."""
    aiokafka = logging.getLogger("aiokafka.consumer.group_coordinator")
    kafka = logging.getLogger("kafka.coordinator")
    selector = logging.getLogger("kafka.net.selector")

    def emit():
        aiokafka.error("Group Coordinator Request failed: %s", "[Error 15] GroupCoordinatorNotAvailableError")
        aiokafka.warning("Marking the coordinator dead (node %s)for group %s.", 1, "app")
        kafka.warning(
            "Marking the coordinator dead (node %s) for group %s: %s.",
            "coordinator-1",
            "app",
            "[Error 16] NotCoordinatorError",
        )
        selector.warning(
            "Task <Task> ran for 0.197s (>0.100s threshold). It is blocking the event loop -- likely a "
            "tight sync loop inside a coroutine. Other pollers will time out."
        )
        aiokafka.error("Group Coordinator Request failed: %s", "[Error 30] GroupAuthorizationFailedError")
        selector.warning("Task %s left RUNNING after step; demoting to UNSCHEDULED", "<Task>")

    lines = lines_logged("text", "event_loop", emit)
    assert len(lines) == 2, lines
    assert "GroupAuthorizationFailedError" in lines[0] and "left RUNNING" in lines[1]


HOST_LOADS_THE_TEXT_ENCODER = """
import logging
from streamrec.runtime.model_host import prepare_process
from streamrec.runtime.settings import load_settings
prepare_process(load_settings())
from model_server.tgat.text_encoder import TextEncoder
TextEncoder().encode(["a red phone"])
logging.getLogger("streamrec.runtime.model_host").info("encoded")
"""


@pytest.mark.slow  # a process of its own that loads the item-text encoder
def test_the_model_host_logs_in_the_one_format_and_draws_no_progress_bar():
    """A spawned host as serve() prepares it: loading the item-text encoder (transformers) draws no bar."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMREC_", "HF_HUB_DISABLE"))}
    result = subprocess.run(
        [sys.executable, "-c", HOST_LOADS_THE_TEXT_ENCODER],
        env={**env, "STREAMREC_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "Loading weights" not in result.stderr, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["process"], e["message"]) for e in entries] == [("model_host", "encoded")]


def test_a_library_repeating_one_record_is_logged_once_a_window_with_the_count():
    import io
    import logging

    from streamrec.runtime.logs import REPEAT_WINDOW_S, configure_logging

    out = io.StringIO()
    configure_logging("info", "text", role="event_loop", stream=out)
    client = logging.getLogger("aiokafka.client")
    start = 1_000.0
    for k in range(300):  # a broker down for 30 s, retried every 100 ms
        record = client.makeRecord(
            client.name, logging.ERROR, __file__, 1, "Unable connect to node with id %s: %s", (1, "refused"), None
        )
        record.created = start + k * 0.1
        client.handle(record)
    late = client.makeRecord(
        client.name, logging.ERROR, __file__, 1, "Unable connect to node with id %s: %s", (1, "refused"), None
    )
    late.created = start + REPEAT_WINDOW_S + 1
    client.handle(late)
    ours = logging.getLogger("streamrec.runtime.worker")
    for _ in range(3):  # our own lines are never dropped
        ours.warning("the graph server is down")
    lines = out.getvalue().splitlines()
    library = [line for line in lines if "Unable connect" in line]
    assert len(library) == 2
    assert library[1].endswith("(299 more like it in the last 60 s)")
    assert sum("the graph server is down" in line for line in lines) == 3
