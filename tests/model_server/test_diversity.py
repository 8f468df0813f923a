"""The diversity control: MMR re-ranking (model_server/diversity.py) and how the contract applies it."""

import logging
import math

import pytest
import torch

from model_server.contract import InteractionBatch, Recommender
from model_server.diversity import check_strength, intra_list_diversity, mmr_rerank
from stream.events import Item


def _scores(rows=3, items=250, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, items, generator=generator)


def test_lambda_zero_is_the_identity_and_costs_nothing():
    scores = _scores()
    assert mmr_rerank(scores, torch.randn(250, 8), 0.0) is scores


def test_only_the_top_depth_are_reordered_and_they_stay_above_the_rest():
    scores, vectors = _scores(), torch.randn(250, 8, generator=torch.Generator().manual_seed(1))
    out = mmr_rerank(scores, vectors, 0.6, depth=40)
    assert out is not scores and torch.equal(scores, _scores())  # a new tensor; the input is untouched
    for row in range(scores.shape[0]):
        before = scores[row].topk(40).indices
        after = out[row].topk(40).indices
        assert set(before.tolist()) == set(after.tolist())
        rest = torch.ones(250, dtype=torch.bool)
        rest[before] = False
        assert torch.equal(out[row, rest], scores[row, rest])  # everything else unchanged
        assert out[row, before].min() > out[row, rest].max()
        assert len(set(out[row, before].tolist())) == 40  # a strict order, no ties
    assert not torch.equal(out.topk(40).indices, scores.topk(40).indices)  # and it did reorder


def test_excluded_items_stay_excluded():
    scores = _scores(items=30)
    scores[0, :25] = float("-inf")  # fewer valid candidates than the depth
    scores[1, 3] = float("-inf")
    out = mmr_rerank(scores, torch.randn(30, 4), 1.0, depth=10)
    assert torch.equal(torch.isinf(out), torch.isinf(scores))
    assert set(out[0].topk(5).indices.tolist()) == set(range(25, 30))


def _near_duplicates():
    """Six groups of ten near-identical items; scores favour group 0, then 1, ...: the unmodified top 10 is
    one group."""
    generator = torch.Generator().manual_seed(3)
    centres = torch.nn.functional.normalize(torch.randn(6, 16, generator=generator), dim=1)
    vectors = centres.repeat_interleave(10, 0) + 0.01 * torch.randn(60, 16, generator=generator)
    scores = (10.0 - torch.arange(60) // 10 + 0.01 * torch.rand(60, generator=generator)).unsqueeze(0)
    return scores, vectors


def test_a_list_of_near_duplicates_grows_more_varied_as_lambda_grows():
    scores, vectors = _near_duplicates()
    diversities, groups = [], []
    for strength in (0.0, 0.25, 0.5, 0.75, 1.0):
        top = mmr_rerank(scores, vectors, strength, depth=60).topk(10).indices
        diversities.append(float(intra_list_diversity(top, vectors)[0]))
        groups.append(len(set((top[0] // 10).tolist())))
    assert groups[0] == 1 and groups[-1] == 6
    assert all(a <= b for a, b in zip(diversities, diversities[1:])), diversities
    assert diversities[-1] > diversities[0] + 0.5


def test_category_labels_make_a_soft_cap_per_category():
    scores = torch.linspace(2.0, 1.0, 12).unsqueeze(0)
    labels = torch.tensor([[0]] * 8 + [[1]] * 2 + [[2]] * 2)  # the 8 best items share one category
    top = mmr_rerank(scores, labels, 0.5).topk(4).indices[0].tolist()
    assert [labels[i, 0].item() for i in top[:3]] == [0, 1, 2]  # one of each before a second of category 0


class _Fixed(Recommender):
    """Scores fixed per item; categories from item records."""

    def __init__(self, scores):
        super().__init__()
        self.fixed = torch.tensor(scores)

    def _observe(self, batch, users, items):
        pass

    def score(self, users):
        return self.fixed[: len(self.items)].repeat(len(users), 1)


def _fixed_model():
    model = _Fixed([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    model.observe(InteractionBatch(["u"] * 6, [f"i{k}" for k in range(6)], ["view"] * 5 + ["purchase"], list(range(6))))
    return model


def test_the_contract_falls_back_to_categories_and_serving_and_ranking_agree():
    model = _fixed_model()
    model.observe_items(
        [
            Item("i0", category="a"),
            Item("i1", category="a"),
            Item("i2", category="a"),
            Item("i3", category="b"),
            Item("i4", category="c, a"),
            Item("i5", category="c"),
        ]
    )
    plain = [e["item_id"] for e in model.recommend(["u"], 4, exclude="none")[0]]
    model.diversity = 0.7
    lists = model.recommend(["u"], 4, exclude="none")[0]
    diverse = [e["item_id"] for e in lists]
    assert plain == ["i0", "i1", "i2", "i3"] and diverse[:2] == ["i0", "i3"]
    assert [e["score"] for e in lists] == [float(6 - int(i[1])) for i in diverse]  # the model's own scores
    ranked = model.ranking_scores(["u"])  # what the evaluation harness ranks by: the same order
    assert [model.items.ids[i] for i in ranked.topk(4).indices[0].tolist()] == diverse
    # exclusions first: i5 was bought, so it is never a candidate
    assert "i5" not in [e["item_id"] for e in model.recommend(["u"], 6, exclude="purchased")[0]]


def test_without_vectors_or_categories_diversity_does_nothing_and_says_so_once(caplog):
    model = _fixed_model()
    model.diversity = 0.5
    with caplog.at_level(logging.WARNING, logger="model_server.contract"):
        first = model.recommend(["u"], 3, exclude="none")
        second = model.recommend(["u"], 3, exclude="none")
    assert first == second and [e["item_id"] for e in first[0]] == ["i0", "i1", "i2"]
    assert [r.message for r in caplog.records if "no effect" in r.message] == [
        "diversity 0.50 has no effect on recommender: the model has no item vectors and no item has a category "
        "(item records on the items topic bring them)"
    ]


def test_the_strength_must_be_a_number_between_0_and_1():
    assert check_strength("0.25") == 0.25
    for bad in ("-0.1", "1.5", "nan", "lots", None):
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_strength(bad)


@pytest.mark.parametrize("value", ["1.5", "-1", "high", "nan"])
def test_a_bad_streamrec_diversity_stops_start_up_saying_what_to_set(tmp_path, value):
    from streamrec.runtime.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=rf"STREAMREC_DIVERSITY='{value}': must be (a number )?between 0.0 and 1.0"):
        load_settings({"STREAMREC_DIVERSITY": value}, cwd=tmp_path)
    assert load_settings({"STREAMREC_DIVERSITY": "0.3"}, cwd=tmp_path).diversity == 0.3
    assert load_settings({}, cwd=tmp_path).diversity == 0.0
    assert load_settings({"STREAMREC_DIVERSTY": "0.3"}, cwd=tmp_path).unknown_variables == (
        "STREAMREC_DIVERSTY is not a streamrec setting and is ignored: did you mean STREAMREC_DIVERSITY?",
    )


def test_the_model_host_gives_every_model_it_loads_the_setting(tmp_path):
    from streamrec.runtime.model_host import load_recommender
    from streamrec.runtime.settings import load_settings

    model, _ = load_recommender(load_settings({"STREAMREC_DIVERSITY": "0.4"}, cwd=tmp_path), None)
    assert model.diversity == 0.4


def test_ties_are_broken_by_item_index_whatever_order_topk_returns():
    # every candidate scores the same and is equally dissimilar: only the tie-break orders the list (torch's
    # topk returns these ties out of item order on the CPU)
    out = mmr_rerank(torch.ones(2, 40), torch.eye(40), 0.5, depth=40)
    assert out[0].argsort(descending=True).tolist() == list(range(40))  # lower item index first
    assert torch.equal(out[0], out[1])


def test_intra_list_diversity_of_padded_lists_zero_vectors_and_label_sets():
    vectors = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # normalised inside
    ild = intra_list_diversity(torch.tensor([[0, 1, -1], [0, 2, 3], [0, -1, -1]]), vectors)
    assert ild.dtype == torch.float64
    assert float(ild[0]) == pytest.approx(0.0)  # the same direction: identical for the similarity
    assert float(ild[1]) == pytest.approx(1.0)  # orthogonal, and a zero vector is dissimilar to all
    assert math.isnan(float(ild[2]))  # one item: no pairs
    labels = torch.tensor([[0, -1], [0, 1], [2, -1], [-1, -1]])  # label sets padded with -1
    ild = intra_list_diversity(torch.tensor([[0, 1, 2, 3]]), labels)
    # pairs (0,1) 1/sqrt(2) alike, every other pair 0: 1 - (1/sqrt(2)) / 6
    assert float(ild[0]) == pytest.approx(1.0 - (1.0 / math.sqrt(2.0)) / 6.0)
    assert intra_list_diversity(torch.zeros(0, 20, dtype=torch.long), torch.eye(3)).numel() == 0
