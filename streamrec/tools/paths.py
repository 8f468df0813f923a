"""Paths as a user would type them, for what the tools record (a report's `command`, a model folder): a committed
report must hold no folder of the machine that produced it (tests/test_no_machine_paths.py)."""

from __future__ import annotations

import os
from pathlib import Path


def as_typed(path: str | os.PathLike, cwd: Path | None = None) -> str:
    """`path` relative to the folder the command ran in when inside it; `~/...` when inside the user's home;
    otherwise as given (a folder outside both, e.g. a temporary one, stays what it is: the machine-path test
    names it if such a report is committed)."""
    given = str(path)
    if not os.path.isabs(given):
        return given
    absolute = Path(os.path.normpath(given))
    cwd = Path.cwd() if cwd is None else cwd
    for base in _forms(cwd):
        try:
            relative = absolute.relative_to(base)
        except ValueError:
            continue
        return str(relative) if relative.parts else "."
    try:
        home = Path.home()
    except RuntimeError:  # no home folder known
        return given
    for base in _forms(home):
        try:
            return str(Path("~") / absolute.relative_to(base))
        except ValueError:
            continue
    return given


def typed_argv(argv: list[str], cwd: Path | None = None) -> list[str]:
    """Every argument that is an absolute path (`--out /abs/dir` or `--out=/abs/dir`) as_typed."""
    typed = []
    for argument in argv:
        option, equals, value = argument.partition("=")
        if equals and option.startswith("--") and os.path.isabs(value):
            typed.append(f"{option}={as_typed(value, cwd)}")
        elif os.path.isabs(argument):
            typed.append(as_typed(argument, cwd))
        else:
            typed.append(argument)
    return typed


def _forms(folder: Path) -> list[Path]:
    """A folder as given and with its links resolved (a checkout reached through a link has both names)."""
    given = Path(os.path.normpath(os.path.abspath(folder)))
    resolved = given.resolve()
    return [given] if resolved == given else [given, resolved]
