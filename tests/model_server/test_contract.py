"""Ranking ties go the same way in every process: by item id, not by the order in which items were first seen."""

from model_server.baselines.popularity import Popularity
from model_server.contract import InteractionBatch


def ranked(order: list[int], k: int) -> list[list[str]]:
    events = [("u1", "i-b"), ("u1", "i-a"), ("u1", "i-d"), ("u1", "i-c"), ("u2", "i-e"), ("u3", "i-e"), ("u2", "i-f")]
    model = Popularity()
    shuffled = [events[k] for k in order]
    model.observe(
        InteractionBatch(
            [u for u, _ in shuffled], [i for _, i in shuffled], ["view"] * len(shuffled), list(range(len(shuffled)))
        )
    )
    return [[entry["item_id"] for entry in row] for row in model.recommend(["u4", "u1"], k, exclude="none")]


def test_tied_items_are_ranked_by_id_whatever_order_they_arrived_in():
    forward, backward = list(range(7)), list(range(6, -1, -1))
    for k in (1, 2, 3, 5, 7):
        assert ranked(forward, k) == ranked(backward, k), k
    # i-e has two users; the five with one tie, so the places after it go in id order
    assert ranked(backward, 4)[0] == ["i-e", "i-a", "i-b", "i-c"]
