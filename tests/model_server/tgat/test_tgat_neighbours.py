"""The recent-neighbour buffer keeps what the graph store's bounded read returns:
one edge per (user, item, type) at its newest last_ts, the K newest per node, ties by neighbour id ascending."""

import random

import torch

from model_server.tgat.neighbours import RecentNeighbours, tie_keys
from tgat_test_helpers import one_thread  # noqa: F401 (autouse fixture)


def _reference(edges, names, k):
    """Brute force: ORDER BY last_ts DESC, neighbour id, type LIMIT K over de-duplicated edges."""
    newest = {}
    for src, dst, etype, ts in edges:
        key = (src, dst, etype)
        newest[key] = max(newest.get(key, ts), ts)
    rows = {}
    for (src, dst, etype), ts in newest.items():
        rows.setdefault(src, []).append((-ts, names[dst].encode(), dst, etype))
    return {src: [(dst, etype, -neg) for neg, _, dst, etype in sorted(row)[:k]] for src, row in rows.items()}


def _buffer_rows(buffer, nodes):
    out = {}
    for node in nodes:
        nbr, etype, ts = (t.tolist() for t in buffer.rows(torch.tensor([node])))
        out[node] = [(n, e, s) for n, e, s in zip(nbr[0], etype[0], ts[0]) if n >= 0]
    return out


def test_buffer_matches_bounded_graph_store_read_with_ties_and_repeats():
    rng = random.Random(7)
    names = [f"n{rng.randint(0, 10**6)}" for _ in range(60)]  # string order differs from index order
    edges = [(rng.randrange(60), rng.randrange(60), rng.randrange(3), rng.randrange(20)) for _ in range(2000)]
    k = 5
    streamed = RecentNeighbours(k, capacity=4)  # forces growth by doubling
    streamed.add_nodes(tie_keys(names))
    for start in range(0, len(edges), 37):
        chunk = torch.tensor(edges[start : start + 37]).T
        streamed.insert(chunk[0], chunk[1], chunk[2], chunk[3])
    expected = _reference(edges, names, k)
    assert _buffer_rows(streamed, expected) == expected

    rebuilt = RecentNeighbours(k)  # from the graph store's edges, in any order, in one call
    rebuilt.add_nodes(tie_keys(names))
    shuffled = edges[:]
    rng.shuffle(shuffled)
    whole = torch.tensor(shuffled).T
    rebuilt.insert(whole[0], whole[1], whole[2], whole[3])
    n = streamed.num_nodes
    assert torch.equal(rebuilt.nbr[:n], streamed.nbr[:n]) and torch.equal(rebuilt.ts[:n], streamed.ts[:n])


def test_samplers_are_the_nodes_whose_rows_hold_a_node():
    buffer = RecentNeighbours(2)
    buffer.add_nodes(tie_keys(["a", "b", "c", "d"]))
    buffer.insert(torch.tensor([0, 1, 2]), torch.tensor([3, 3, 1]), torch.tensor([0, 0, 0]), torch.tensor([1, 2, 3]))
    assert buffer.samplers_of(torch.tensor([3])).tolist() == [0, 1]
    assert buffer.reference_time(torch.tensor([0, 1, 2, 3])).tolist() == [1, 2, 3, 0]
