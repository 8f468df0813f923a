"""The temporal GAT's lists under the diversity control: MMR over its own item embeddings."""

import torch

from model_server.contract import InteractionBatch
from model_server.diversity import intra_list_diversity
from model_server.tgat import TGATConfig, TrainConfig, build_streamrec
from tgat_test_helpers import one_thread, tgat_events  # noqa: F401 (fixtures)


def test_item_vectors_are_the_item_embeddings_and_diversity_reorders_the_served_lists(tgat_events):
    rec = build_streamrec(
        TGATConfig(dim=16, k=5), TrainConfig(epochs=1, batch_size=200, progress=False), device="cpu", text=False
    )
    stream = InteractionBatch(
        list(tgat_events.users), list(tgat_events.items), list(tgat_events.types), list(tgat_events.ts)
    )
    rec.fit(stream.slice(0, 1600), stream.slice(1600, 2000))
    vectors = rec.item_vectors()
    assert vectors.shape == (len(rec.items), 16)
    assert torch.equal(vectors[3], rec.store.embedding[rec.graph.item_node[3]])
    users = list(dict.fromkeys(stream.users[-200:]))[:20]
    plain = rec.recommend(users, 10, exclude="none")
    rec.diversity = 0.8
    diverse = rec.recommend(users, 10, exclude="none")
    ranked = rec.ranking_scores(users)  # the harness's ranking: the same order as serving's
    assert [[e["item_id"] for e in row] for row in diverse] == [
        [rec.items.ids[i] for i in row] for row in ranked.topk(10).indices.tolist()
    ]
    assert all(len(row) == 10 and all(e["because"] is not None for e in row) for row in diverse)
    assert [[e["item_id"] for e in row] for row in diverse] != [[e["item_id"] for e in row] for row in plain]

    def ild(lists):
        top = torch.tensor([[rec.items.get(e["item_id"]) for e in row] for row in lists])
        return float(intra_list_diversity(top, vectors).mean())

    assert ild(diverse) > ild(plain)
