"""Options that several sub-commands share, defined once so that each idea has one name, one meaning and one
help text everywhere (a leading underscore: not a sub-command)."""

from __future__ import annotations

import argparse
import sys

DEVICES = ("auto", "cpu", "cuda")


def event_count(text: str) -> int:
    """argparse type of a batch size: a whole number of events, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of events, 1 or more")
    return value


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES, help="torch device; auto: CUDA when present")


def add_threads_argument(parser, default: int | None = None) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=default,
        help="torch CPU threads" + ("" if default else " (default: torch's own choice)"),
    )


def add_limit_argument(parser):
    """--limit N: the first N events of the stream (smoke runs); returns the action, for a deprecated alias."""
    return parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="use only the first N events (default: every event)"
    )


def add_progress_argument(parser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"streamrec {parser.prog.split()[-1]}: {option_string} is deprecated, use {self.new_flag}", file=sys.stderr
        )
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser, old_flag: str, new) -> None:
    """An old spelling of the option `new` (the action add_argument returned): it still works, with a warning,
    and is left out of --help, so that scripts written for the old name keep running."""
    parser.add_argument(
        old_flag,
        dest=new.dest,
        type=new.type,
        metavar=new.metavar,
        action=_DeprecatedAlias,
        new_flag=new.option_strings[0],
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
