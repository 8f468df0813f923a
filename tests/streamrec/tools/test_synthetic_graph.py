"""The synthetic scale graph: distinct edges, heavy-tailed degrees, times in their span (pure logic)."""

import numpy as np
import pytest

from streamrec.schema import EVENT_TYPES
from streamrec.tools.synthetic_graph import DAY_MS, synthetic_edges


def _keys(edges):
    return (edges.users * 10**6 + edges.items) * len(EVENT_TYPES) + edges.types


def test_exactly_the_asked_number_of_distinct_edges_the_same_for_a_seed():
    edges = synthetic_edges(20_000, users=1_000, items=300, seed=3)
    assert len(edges) == 20_000 and np.unique(_keys(edges)).size == 20_000
    again = synthetic_edges(20_000, users=1_000, items=300, seed=3)
    assert np.array_equal(_keys(edges), _keys(again)) and np.array_equal(edges.last_ts, again.last_ts)
    assert not np.array_equal(_keys(edges), _keys(synthetic_edges(20_000, users=1_000, items=300, seed=4)))


def test_counts_and_times_are_those_of_an_edge_of_record():
    end = 1_700_000_000_000
    edges = synthetic_edges(5_000, users=200, items=100, seed=0, end_ms=end, days=7)
    assert (edges.count >= 1).all() and edges.count.sum() > len(edges)  # popular pairs repeat
    assert (edges.first_ts <= edges.last_ts).all()
    assert edges.first_ts.min() >= end - 7 * DAY_MS and edges.last_ts.max() <= end
    assert (edges.first_ts[edges.count == 1] == edges.last_ts[edges.count == 1]).all()
    assert set(np.unique(edges.types).tolist()) <= {EVENT_TYPES.index(t) for t in ("view", "add_to_cart", "purchase")}


def test_degrees_are_heavy_tailed():
    edges = synthetic_edges(50_000, users=5_000, items=1_000, seed=0)
    degree = np.sort(np.bincount(edges.items, minlength=1_000))[::-1]
    # the top 1 % of the items hold far more than 1 % of the edges (a power law's head), yet most items have some
    assert degree[:10].sum() > 0.08 * len(edges)
    assert (degree > 0).mean() > 0.5


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError, match="cannot make"):
        synthetic_edges(100, users=2, items=2)
