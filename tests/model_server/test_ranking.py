"""Metric functions against hand-computed cases."""

import math

import pytest
import torch

from model_server import ranking


def counts(scores, target):
    g, e = ranking.rank_counts(torch.tensor([scores], dtype=torch.float32), torch.tensor([target]))
    return g, e


def test_rank_counts_strict_and_ties():
    g, e = counts([0.9, 0.5, 0.5, 0.5, 0.1], target=1)
    assert (int(g[0]), int(e[0])) == (1, 2)  # one strictly above, two others tied
    assert float(ranking.expected_rank(g, e)[0]) == 3.0  # 1 + 1 + 2/2
    assert float(ranking.reciprocal_rank(g, e)[0]) == pytest.approx(1 / 3)


def test_all_ties_is_random_order_not_first_place():
    g, e = counts([0.0] * 4, target=2)
    assert float(ranking.expected_rank(g, e)[0]) == 2.5
    # positions 1..4 equally likely: Hit@1 = 1/4, Hit@2 = 2/4
    assert float(ranking.recall_at_k(g, e, 1)[0]) == pytest.approx(0.25)
    assert float(ranking.recall_at_k(g, e, 2)[0]) == pytest.approx(0.5)
    expected_ndcg2 = (1 / math.log2(2) + 1 / math.log2(3)) / 4
    assert float(ranking.ndcg_at_k(g, e, 2)[0]) == pytest.approx(expected_ndcg2)


def test_recall_and_ndcg_without_ties():
    g, e = counts([0.1, 0.9, 0.8, 0.7], target=0)  # rank 4
    assert float(ranking.recall_at_k(g, e, 3)[0]) == 0.0
    assert float(ranking.recall_at_k(g, e, 4)[0]) == 1.0
    assert float(ranking.ndcg_at_k(g, e, 4)[0]) == pytest.approx(1 / math.log2(5))
    assert float(ranking.ndcg_at_k(g, e, 3)[0]) == 0.0


def test_tie_straddling_the_cutoff():
    g, e = counts([0.9, 0.5, 0.5, 0.5, 0.1], target=3)  # positions 2, 3 or 4
    assert float(ranking.recall_at_k(g, e, 3)[0]) == pytest.approx(2 / 3)
    assert float(ranking.ndcg_at_k(g, e, 3)[0]) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)


def test_k_larger_than_the_catalogue():
    g, e = counts([0.3, 0.2, 0.1], target=2)  # last of three
    assert float(ranking.recall_at_k(g, e, 20)[0]) == 1.0
    assert float(ranking.ndcg_at_k(g, e, 20)[0]) == pytest.approx(1 / math.log2(4))
    summary = ranking.summarise(g, e)
    assert summary["recall@10"] == 1.0 and summary["recall@20"] == 1.0


def test_unrankable_item_and_empty_catalogue_are_misses():
    g, e = counts([0.3, 0.2], target=-1)  # item not in the catalogue
    assert int(g[0]) == ranking.MISS
    assert float(ranking.reciprocal_rank(g, e)[0]) == 0.0
    assert float(ranking.recall_at_k(g, e, 20)[0]) == 0.0
    assert float(ranking.ndcg_at_k(g, e, 20)[0]) == 0.0
    g, e = ranking.rank_counts(torch.zeros(2, 0), torch.tensor([-1, -1]))  # nothing seen yet
    assert g.tolist() == [ranking.MISS, ranking.MISS]
    summary = ranking.summarise(g, e)
    assert summary["mrr"] == 0.0 and summary["rankable_share"] == 0.0


def test_empty_history_gives_none_not_a_crash():
    empty = torch.zeros(0, dtype=torch.long)
    summary = ranking.summarise(empty, empty)
    assert summary["events"] == 0 and summary["mrr"] is None and summary["recall@20"] is None
    assert ranking.user_hit_rate([], torch.zeros(0)) is None
    assert ranking.catalogue_coverage([], 0) is None


def test_summary_means():
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    g, e = ranking.rank_counts(scores, torch.tensor([0, 2]))  # ranks 1 and 3
    assert ranking.summarise(g, e)["mrr"] == pytest.approx((1 + 1 / 3) / 2)


def test_user_hit_rate_and_coverage():
    assert ranking.user_hit_rate(["a", "a", "b"], torch.tensor([0.0, 1.0, 0.0])) == 0.5
    assert ranking.catalogue_coverage([0, 1, 1, 3], 6) == 0.5  # 3 distinct of 6
