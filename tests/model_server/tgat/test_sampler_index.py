"""The samplers index equals a scan of the buffer (who holds whom) after every kind of change: micro-batches
whose rows drop and regain neighbours (masked keys brought back), merges of the recent keys, a clear, a load."""

import torch

from model_server.tgat.neighbours import EMPTY, RecentNeighbours, tie_keys
from model_server.tgat import sampler_index


def _scanned(buffer: RecentNeighbours, nodes: torch.Tensor) -> torch.Tensor:
    marked = torch.zeros(buffer.num_nodes + 1, dtype=torch.bool)
    marked[nodes] = True  # the last entry stands for EMPTY (-1) and stays False
    return torch.nonzero(marked[buffer.nbr[: buffer.num_nodes]].any(dim=1)).squeeze(1)


def _assert_like_a_scan(buffer: RecentNeighbours, generator: torch.Generator) -> None:
    for _ in range(5):
        nodes = torch.randint(
            0, buffer.num_nodes, (int(torch.randint(1, 12, (1,), generator=generator)),), generator=generator
        )
        assert torch.equal(buffer.samplers_of(nodes), _scanned(buffer, nodes))
    everything = torch.arange(buffer.num_nodes)
    assert torch.equal(buffer.samplers_of(everything), _scanned(buffer, everything))


def test_the_index_answers_as_a_scan_of_the_buffer(monkeypatch):
    monkeypatch.setattr(sampler_index, "_MIN_RECENT", 64)  # merges happen within the test's few thousand edges
    monkeypatch.setattr(sampler_index, "_RECENT_SCALE", 4)
    generator = torch.Generator().manual_seed(3)
    n_nodes = 300
    buffer = RecentNeighbours(k=4)
    buffer.add_nodes(tie_keys([f"n{i}" for i in range(n_nodes)]))
    for step in range(150):
        n = int(torch.randint(1, 20, (1,), generator=generator))
        # a few hot nodes: their rows turn over, and the same pairs leave and come back
        src = torch.randint(0, 40 if step % 2 else n_nodes, (n,), generator=generator)
        dst = torch.randint(0, 60, (n,), generator=generator)
        ts = torch.randint(0, 10 * step + 10, (n,), generator=generator)
        types = torch.randint(0, 2, (n,), generator=generator)
        buffer.insert(torch.cat([src, dst]), torch.cat([dst, src]), torch.cat([types, types]), torch.cat([ts, ts]))
        if step % 10 == 0:
            _assert_like_a_scan(buffer, generator)
    assert not bool(buffer.samplers.live.all())  # some keys were masked, not yet merged away
    assert buffer.samplers.main.numel() and buffer.samplers.recent.numel()  # merged, and both arrays read
    _assert_like_a_scan(buffer, generator)

    copy = RecentNeighbours(k=4)
    copy.load_state_dict(buffer.state_dict())
    _assert_like_a_scan(copy, generator)
    buffer.clear()
    assert buffer.samplers_of(torch.arange(n_nodes)).numel() == 0
    assert int((buffer.nbr[:n_nodes] != EMPTY).sum()) == 0
