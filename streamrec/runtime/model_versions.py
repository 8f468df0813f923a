"""Model versions: which checkpoint the workers serve is a decision recorded in the model folder, not a file time.

A version is one checkpoint folder directly under STREAMREC_MODEL_DIR (model.pt + metadata.json, as
`streamrec train --out` writes it); its name is the folder's name. The file CURRENT in the model folder records
the promoted versions, newest last: the last one is served, and rollback drops it, so the one before is served
again. CURRENT is replaced atomically (a temporary file, then os.replace), so a worker polling it never reads
half a file, and a promotion or rollback holds a lock on the model folder from reading the record to replacing it,
so two at the same moment (two operators, two CI jobs) both land in the history instead of the last one
silently dropping the first. STREAMREC_MODEL_VERSION pins one version: the worker serves it whatever CURRENT says.

Promotion checks the checkpoint's digest (model_server/digest.py); the worker checks it again before
loading, since a file can be altered after it was promoted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TypedDict

from .settings import Settings

CHECKPOINT_FILE = "model.pt"
METADATA_FILE = "metadata.json"
CURRENT_FILE = "CURRENT"
# a folder name of one path component; the same rule checks STREAMREC_MODEL_VERSION
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
PROMOTE_HINT = "promote one with `streamrec models promote VERSION` (`streamrec models list` shows them)"


class Promotion(TypedDict):
    """One entry of CURRENT's history."""

    version: str
    promoted_at: str  # local time, %Y-%m-%dT%H:%M:%S%z


class VersionError(ValueError):
    """A version that cannot be served, promoted or rolled back to; the message says what to do instead."""


@dataclass(frozen=True)
class Version:
    name: str
    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    @property
    def created(self) -> float:
        """When the checkpoint was written (seconds since the epoch)."""
        return self.checkpoint.stat().st_mtime

    def metadata(self) -> dict[str, Any]:
        """metadata.json as training wrote it; {} when it is missing or unreadable (promotion refuses those)."""
        try:
            meta = json.loads((self.folder / METADATA_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}


def version_name_of(checkpoint: Path | None) -> str | None:
    """The version a checkpoint path belongs to (its folder's name), None for no checkpoint."""
    return Path(checkpoint).parent.name if checkpoint is not None else None


class VersionStore:
    """The versions of one model folder and its CURRENT record."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)

    @property
    def current_file(self) -> Path:
        return self.model_dir / CURRENT_FILE

    def versions(self) -> list[Version]:
        """Every checkpoint folder directly under the model folder, oldest first."""
        if not self.model_dir.is_dir():
            return []
        found = [
            Version(p.name, p)
            for p in self.model_dir.iterdir()
            if p.is_dir() and VERSION_NAME.fullmatch(p.name) and (p / CHECKPOINT_FILE).is_file()
        ]
        return sorted(found, key=lambda v: (v.created, v.name))

    def get(self, name: str) -> Version:
        version = Version(name, self.model_dir / name)
        if not VERSION_NAME.fullmatch(name) or not version.checkpoint.is_file():
            known = ", ".join(v.name for v in self.versions()) or "none yet: train one with `streamrec train --out`"
            raise VersionError(
                f"no version {name!r} under {self.model_dir} (a folder with {CHECKPOINT_FILE}); versions: {known}"
            )
        return version

    def history(self) -> list[Promotion]:
        """The promotions, oldest first: {"version", "promoted_at"}; [] when nothing was ever promoted."""
        try:
            record = json.loads(self.current_file.read_text())
            history: list[Promotion] = record["history"]
            if not all(isinstance(entry["version"], str) for entry in history):
                raise TypeError("a version that is not a name")
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VersionError(
                f"{self.current_file} is not a record of promotions ({exc}): delete it and {PROMOTE_HINT}"
            ) from None
        return history

    def current(self) -> str | None:
        history = self.history()
        return history[-1]["version"] if history else None

    def promote(self, name: str) -> Version:
        """Makes `name` the served version; a missing version or one whose digest does not check out is refused."""
        version = self._servable(name, "not promoting")
        with self._changing():
            history = self.history()
            if not history or history[-1]["version"] != name:  # promoting the current one again changes nothing
                self._write(history + [{"version": name, "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}])
        return version

    def rollback(self) -> tuple[str, Version]:
        """Serves the version promoted before the current one again: (the one dropped, the one served now)."""
        with self._changing():
            history = self.history()
            if len(history) < 2:
                now = f"only {history[0]['version']} was ever promoted" if history else "nothing was ever promoted"
                raise VersionError(f"no previous version to roll back to under {self.model_dir}: {now}")
            previous = self._servable(history[-2]["version"], "not rolling back to")
            self._write(history[:-1])
        return history[-1]["version"], previous

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Holds the model folder's lock (an advisory lock on a file beside CURRENT; released when the process
        dies) while CURRENT is read and replaced."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        with open(self.model_dir / f".{CURRENT_FILE}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _servable(self, name: str, refusal: str) -> Version:
        """The version `name` if it exists, its digest checks out and it loads as the model host loads it (weights
        only); else VersionError, starting with `refusal`. Promote and rollback are the CLI's, never a worker's
        event loop: reading the checkpoint here imports torch."""
        version = self.get(name)
        refused = rejection(version.checkpoint) or load_refusal(version.checkpoint)
        if refused:
            raise VersionError(f"{refusal} {name}: {refused}")
        return version

    def _write(self, history: list[Promotion]) -> None:
        """Atomically: a worker reads either the old record or the new one."""
        record = {"current": history[-1]["version"] if history else None, "history": history}
        temporary = self.model_dir / f".{CURRENT_FILE}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, self.current_file)


def rejection(checkpoint: Path) -> str | None:
    """Why `checkpoint` must not be loaded (its digest does not match its metadata.json), or None."""
    from model_server.digest import CheckpointRejected, verify_checkpoint  # no torch in the event loop

    try:
        verify_checkpoint(checkpoint)
    except CheckpointRejected as exc:
        return str(exc)
    return None


def load_refusal(checkpoint: Path) -> str | None:
    """Why the model host would refuse `checkpoint` (read through the weights-only unpickler, as it loads one), in
    one line; None when it loads."""
    from model_server.digest import CheckpointRejected
    from model_server.tgat.checkpoint import read_checkpoint

    try:
        read_checkpoint(checkpoint)
    except (CheckpointRejected, ValueError, KeyError, TypeError) as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def served_version(settings: Settings) -> Version | None:
    """The version the worker serves: the pinned one (STREAMREC_MODEL_VERSION), else the current one, else None.
    Raises VersionError for a pin or a CURRENT that names no version."""
    store = VersionStore(settings.model_dir)
    if settings.model_version is not None:
        return store.get(settings.model_version)
    current = store.current()
    return store.get(current) if current is not None else None


def pinned_env(checkpoint_folder: Path) -> dict[str, str]:
    """The variables that serve exactly the checkpoint in `checkpoint_folder`, whatever is promoted: a tool's own
    model (the demo's, the bench's) is pinned rather than promoted in a model folder others use."""
    folder = Path(checkpoint_folder).resolve()
    return {"STREAMREC_MODEL_DIR": str(folder.parent), "STREAMREC_MODEL_VERSION": folder.name}
