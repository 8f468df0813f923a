"""`streamrec models list | promote VERSION | rollback`: which checkpoint under STREAMREC_MODEL_DIR the workers
serve (streamrec/runtime/model_versions.py). Running workers swap to a newly promoted version within
STREAMREC_MODEL_POLL_S, without a restart."""

from __future__ import annotations

import sys
import time

NAME = "models"
HELP = "list the model versions under STREAMREC_MODEL_DIR, promote one to be served, or roll back"


def configure(parser):
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every version (a checkpoint folder), newest last; * marks the current one")
    promote = actions.add_parser("promote", help="serve VERSION: the workers swap to it while they run")
    promote.add_argument("version", help="a folder under STREAMREC_MODEL_DIR (see `streamrec models list`)")
    actions.add_parser("rollback", help="serve the version promoted before the current one again")


def run(args, settings) -> int:
    from ...runtime.model_versions import VersionError, VersionStore

    store = VersionStore(settings.model_dir)
    try:
        if args.action == "list":
            print_versions(store, settings.model_version)
        elif args.action == "promote":
            promoted = store.promote(args.version)
            print(f"promoted {promoted.name}: workers serve it within STREAMREC_MODEL_POLL_S{pin_note(settings)}")
        else:
            dropped, now = store.rollback()
            print(
                f"rolled back from {dropped} to {now.name}: workers serve it within STREAMREC_MODEL_POLL_S"
                f"{pin_note(settings)}"
            )
    except VersionError as exc:
        print(f"streamrec models {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def pin_note(settings) -> str:
    """A worker with this environment's pin ignores promotions: say so where it would surprise."""
    if settings.model_version is None:
        return ""
    return f" (not a worker with STREAMREC_MODEL_VERSION={settings.model_version}: that one serves its pin)"


def print_versions(store, pin: str | None) -> None:
    versions = store.versions()
    if not versions:
        print(f"no versions under {store.model_dir}: train one with `streamrec train --out {store.model_dir}/NAME`")
        return
    current = store.current()
    rows = [("", "VERSION", "CREATED", "MODEL", "MODEL VERSION", "DATA SET", "VALIDATION MRR", "TEST MRR")]
    for version in versions:
        meta = version.metadata()
        mark = "*" if version.name == current else ""
        rows.append(
            (
                mark,
                version.name,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(version.created)),
                meta.get("name", "?"),
                meta.get("model_version", "?"),
                meta.get("dataset") or "-",
                metric(meta.get("validation")),
                metric(meta.get("test")),
            )
        )
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(
        f"current: {current or 'none: the workers serve the baseline until a version is promoted'}"
        + (f"; pinned here: STREAMREC_MODEL_VERSION={pin}" if pin else "")
    )


def metric(report) -> str:
    """The MRR of a validation or test report of metadata.json, '-' when there is none."""
    value = report.get("mrr") if isinstance(report, dict) else None
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def promote_trained(checkpoint_folder, settings, asked: bool) -> str:
    """After `streamrec train --out FOLDER`: promotes FOLDER when asked (--promote), or when it is the first version
    of STREAMREC_MODEL_DIR (nothing current yet); otherwise says how to. Returns the line to print."""
    from pathlib import Path

    from ...runtime.model_versions import VersionError, VersionStore

    folder = Path(checkpoint_folder).resolve()
    store = VersionStore(folder.parent)
    in_model_dir = folder.parent == Path(settings.model_dir).resolve()
    try:
        if asked or (in_model_dir and store.current() is None):
            store.promote(folder.name)
            return f"promoted {folder.name} in {folder.parent}: workers serve it within STREAMREC_MODEL_POLL_S"
    except VersionError as exc:
        return f"not promoted: {exc}"
    if in_model_dir:
        return f"not promoted (the workers serve {store.current()}): `streamrec models promote {folder.name}`"
    return (
        f"not served: workers serve versions under STREAMREC_MODEL_DIR ({settings.model_dir}); train into "
        f"{settings.model_dir}/{folder.name}, or pass --promote to promote it under {folder.parent}"
    )
