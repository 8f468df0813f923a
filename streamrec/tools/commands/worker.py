NAME = "worker"
HELP = "run a worker: interactions -> graph store -> model -> recommendations (Faust agent)"
LOG_ROLE = "event_loop"  # the `process` of its log records and metrics; its model host logs as model_host

# flag -> the STREAMREC_* setting it overrides for this run
FLAG_SETTINGS = {
    "log_level": "LOG_LEVEL",
    "log_format": "LOG_FORMAT",
    "metrics_host": "METRICS_HOST",
    "metrics_port": "METRICS_PORT",
}


def configure(parser):
    from ...runtime.settings import LOG_FORMATS, LOG_LEVELS, load_settings

    built_in = load_settings(env={})  # what each setting is when its variable is not set either

    def default(setting: str) -> str:
        return f"(default: STREAMREC_{FLAG_SETTINGS[setting]}, else {getattr(built_in, setting)})"

    parser.add_argument("--log-level", choices=LOG_LEVELS, help=f"log level {default('log_level')}")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help=f"text, or json: one JSON object per line, for log shippers {default('log_format')}",
    )
    parser.add_argument(
        "--metrics-host",
        metavar="HOST",
        help=f"address the HTTP endpoint listens on; 0.0.0.0: every interface {default('metrics_host')}",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help=f"port of /metrics, /healthz, /readyz and /recommendations; 0: none {default('metrics_port')}",
    )


def _port(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 0 to 65535")
    return int(text)


def apply_flags(args, settings):
    """The settings with the flags given in place of their STREAMREC_* variables, read and checked as those are
    (a bad value is a SettingsError; a host flag moves the advertised host with it, as the variable does)."""
    import os

    from ...runtime.settings import PREFIX, load_settings

    given = {
        PREFIX + variable: str(getattr(args, flag))
        for flag, variable in FLAG_SETTINGS.items()
        if getattr(args, flag) is not None
    }
    return load_settings({**os.environ, **given}) if given else settings


def run(args, settings) -> int:
    from stream.topics import TopicError

    from ...runtime.worker import StartupError, run_worker

    try:
        return run_worker(settings)
    except (TopicError, StartupError) as exc:  # what to fix, in one line, no traceback
        print(f"streamrec worker: {exc}")
        return 2
