"""The embedding store's count of stale rows, kept by every write instead of a scan of every node per batch, equals
the scan under random marks, writes, growth and clears."""

import torch

from model_server.tgat.embedding_store import EmbeddingStore


def test_stale_count_equals_a_scan():
    generator = torch.Generator().manual_seed(4)
    store = EmbeddingStore(dim=4, k=3, device=torch.device("cpu"), capacity=8)
    store.ensure(20)
    for step in range(200):
        nodes = torch.randint(
            0, store.num_nodes, (int(torch.randint(0, 12, (1,), generator=generator)),), generator=generator
        )
        if step % 3:
            store.mark_stale(nodes)  # repeated nodes and nodes already stale
        else:
            store.write(
                nodes,
                torch.zeros(nodes.numel(), 4),
                torch.zeros(nodes.numel(), 3),
                torch.zeros(nodes.numel(), 3, dtype=torch.long),
            )
        if step % 50 == 49:
            store.ensure(store.num_nodes + 17)
        if step == 120:
            store.clear()
        scanned = torch.nonzero(store.stale[: store.num_nodes]).squeeze(1)
        assert store.staleness() == scanned.numel()
        assert torch.equal(store.stale_nodes(), scanned) and torch.equal(store.stale_nodes(3), scanned[:3])
