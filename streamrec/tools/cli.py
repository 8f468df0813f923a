"""The `streamrec` command. Each sub-command lives in streamrec/tools/commands/<name>.py and defines NAME, HELP,
configure(parser) and run(args, settings) -> exit code; modules import their heavy dependencies inside run()
so that `streamrec --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import shlex
import sys

from . import commands
from .paths import typed_argv
from ..runtime.logs import configure_logging
from ..runtime.settings import SettingsError, load_settings


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamrec")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Appends "(default: …)" to the help of every option whose help does not already say its default, so that
    every command's --help shows them and no command spells the common case out. Options that default to None
    or off mean something that has no value to print ("every event", "torch's choice"): their help says it."""
    for action in parser._actions:
        if (
            not action.option_strings
            or action.help == argparse.SUPPRESS
            or "default" in (action.help or "")
            or any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
        ):
            continue
        action.help = f"{action.help or ''} (default: %(default)s)".lstrip()


def command_line(argv: list[str]) -> str:
    """The command as a user would type it again (shell-quoted), whichever path or interpreter started it; a path
    inside the working folder relative to it, one inside the home as ~/... (paths.as_typed)."""
    return shlex.join(["streamrec", *typed_argv(argv)])


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="streamrec", description="Streaming real-time recommender.")
    parser.add_argument("--version", action="version", version=f"streamrec {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for module in _command_modules():
        modules[module.NAME] = module
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(command)
        show_defaults(command)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command_line = command_line(argv)  # for the reports
    module = modules[args.command]
    try:
        settings = load_settings()
        if hasattr(module, "apply_flags"):  # a command's flags that override STREAMREC_* settings (the worker's)
            settings = module.apply_flags(args, settings)
    except SettingsError as exc:
        print(f"streamrec: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, role=getattr(module, "LOG_ROLE", module.NAME))
    for warning in settings.unknown_variables:
        logging.getLogger("streamrec").warning(warning)
    return int(module.run(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
