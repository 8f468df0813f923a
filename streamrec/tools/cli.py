"""The `streamrec` command. Each sub-command lives in streamrec/tools/commands/<name>.py and defines NAME, HELP,
configure(parser) and run(args, settings) -> exit code; modules import their heavy dependencies inside run()
so that `streamrec --help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands
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


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="streamrec", description="Streaming real-time recommender.")
    parser.add_argument("--version", action="version", version=f"streamrec {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for module in _command_modules():
        modules[module.NAME] = module
        module.configure(sub.add_parser(module.NAME, help=module.HELP, description=module.HELP))
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"streamrec: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "aiokafka", "neo4j"):  # client libraries log every connection at INFO
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    for warning in settings.unknown_variables:
        logging.getLogger("streamrec").warning(warning)
    return int(modules[args.command].run(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
