"""The data-set arguments shared by produce, train and eval (a leading underscore: not a sub-command)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..datasets import DATASETS


def add_source_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=DATASETS)
    source.add_argument("--events-csv", metavar="PATH", help="your own stream: CSV user_id,item_id,type,ts[,item_text]")


def load_source(args, settings, command: str):
    """The Dataset the arguments name, or None after printing why it cannot be loaded."""
    from ..datasets import DatasetError, load_dataset

    try:
        return load_dataset(
            args.dataset, settings.data_dir, settings.home / "data", Path(args.events_csv) if args.events_csv else None
        )
    except DatasetError as exc:
        print(f"streamrec {command}: {exc}", file=sys.stderr)
        return None
