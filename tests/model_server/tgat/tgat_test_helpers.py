"""Fixtures and helpers of the tgat tests, imported by each test module. Not a conftest.py: a second conftest
module would shadow tests/conftest.py for the `from conftest import ...` of other test folders."""

import pytest
import torch

from conftest import DATA_DIR  # STREAMREC_DATA_DIR or ../shared/data


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def rees46_head():
    """The first 2,000 REES46 events (skips when the shared data folder is absent)."""
    from streamrec.datasets import load_rees46

    if not (DATA_DIR / "rees46_oct2019_head").exists():
        pytest.skip(f"REES46 data not found under {DATA_DIR}")
    data = load_rees46(DATA_DIR)
    n = 2000
    data.users, data.items, data.types, data.ts = data.users[:n], data.items[:n], data.types[:n], data.ts[:n]
    return data


def graph_store_edges(batch):
    """What the graph store holds for a batch: one edge per (user, item, type) with its newest last_ts."""
    newest = {}
    for user, item, kind, ts in zip(batch.users, batch.items, batch.types, batch.ts):
        key = (user, item, kind)
        newest[key] = max(newest.get(key, ts), ts)
    keys = list(newest)
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [newest[k] for k in keys]
