"""`streamrec worker` flags: they override the STREAMREC_* variables, are checked as those are, and --help says
the defaults."""

from __future__ import annotations

import argparse
import logging
import socket

import pytest

from streamrec.runtime.settings import SettingsError, load_settings
from streamrec.tools.commands import worker as command
from streamrec.tools import cli


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamrec worker")
    command.configure(parser)
    return parser.parse_args(list(flags))


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("STREAMREC_METRICS_PORT", "1111")
    monkeypatch.setenv("STREAMREC_LOG_LEVEL", "warning")
    monkeypatch.delenv("STREAMREC_METRICS_HOST", raising=False)
    monkeypatch.delenv("STREAMREC_ADVERTISED_HOST", raising=False)
    monkeypatch.delenv("STREAMREC_LOG_FORMAT", raising=False)


def test_flags_override_the_variables(env):
    settings = command.apply_flags(
        parse("--metrics-port", "2222", "--log-level", "debug", "--log-format", "json"), load_settings()
    )
    assert (settings.metrics_port, settings.log_level, settings.log_format) == (2222, "debug", "json")


def test_without_flags_the_variables_hold(env):
    settings = command.apply_flags(parse(), load_settings())
    assert (settings.metrics_port, settings.log_level, settings.log_format) == (1111, "warning", "text")


def test_a_wildcard_host_flag_moves_the_advertised_host_as_the_variable_does(env):
    settings = command.apply_flags(parse("--metrics-host", "0.0.0.0"), load_settings())
    assert settings.metrics_host == "0.0.0.0" and settings.advertised_host == socket.gethostname()
    assert settings.http_url == f"http://{socket.gethostname()}:1111"


def test_a_bad_host_flag_is_refused_as_the_variable_would_be(env):
    with pytest.raises(SettingsError, match="STREAMREC_METRICS_HOST='no such host!'"):
        command.apply_flags(parse("--metrics-host", "no such host!"), load_settings())


@pytest.mark.parametrize(
    "flags", [("--metrics-port", "70000"), ("--metrics-port", "-1"), ("--log-level", "loud"), ("--log-format", "xml")]
)
def test_bad_flag_values_stop_with_a_usage_error(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        parse(*flags)
    assert stop.value.code == 2 and flags[0] in capsys.readouterr().err


def test_help_shows_each_flags_variable_and_built_in_default():
    parser = argparse.ArgumentParser(prog="streamrec worker")
    command.configure(parser)
    text = " ".join(parser.format_help().split())
    assert "(default: STREAMREC_METRICS_PORT, else 9464)" in text
    assert "(default: STREAMREC_METRICS_HOST, else 127.0.0.1)" in text
    assert "(default: STREAMREC_LOG_LEVEL, else info)" in text
    assert "(default: STREAMREC_LOG_FORMAT, else text)" in text


def test_the_command_line_reaches_the_worker_and_its_log_level(env, monkeypatch):
    """Through `streamrec worker ...` as typed: the worker runs with the flags' settings, logging at their level."""
    import streamrec.runtime.worker as runtime_worker

    ran_with = []
    monkeypatch.setattr(runtime_worker, "run_worker", lambda settings: ran_with.append(settings) or 0)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert cli.main(["worker", "--metrics-port", "0", "--log-level", "error"]) == 0
        assert root.level == logging.ERROR
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    (settings,) = ran_with
    assert (settings.metrics_port, settings.log_level) == (0, "error")
