"""Fixtures and helpers of the tgat tests, imported by each test module. Not a conftest.py: a second conftest
module would shadow tests/conftest.py for the `from conftest import ...` of other test folders."""

import pytest
import torch

import real_events


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tgat_events():
    """2,000 real events in time order: ML-100K spread over the whole data set (many users and items with a few
    events each, as a store's stream), with generated repeats of some (user, item) pairs, so that the graph
    store's one edge per (user, item, type) differs from the raw events (see real_events.with_repeats)."""
    return real_events.first(real_events.with_repeats(real_events.spread(1800)), 2000)


def item_texts(data):
    """The item record of every item in the events (ML-100K: the title and the genres as category)."""
    return [data.item_info[i] for i in dict.fromkeys(data.items)]


def graph_store_edges(batch):
    """What the graph store holds for a batch: one edge per (user, item, type) with its newest last_ts."""
    newest = {}
    for user, item, kind, ts in zip(batch.users, batch.items, batch.types, batch.ts):
        key = (user, item, kind)
        newest[key] = max(newest.get(key, ts), ts)
    keys = list(newest)
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [newest[k] for k in keys]
