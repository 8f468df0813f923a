"""Each test event's item among its user's own items, as the harness sees them before the event's batch."""

from model_server.contract import InteractionBatch
from model_server.evaluation.repeats import NEW_TO_USER, NEW_USER, NEWEST, OLDER, own_item_kinds


def _events(pairs):
    return InteractionBatch(
        [u for u, _ in pairs], [i for _, i in pairs], ["click"] * len(pairs), list(range(len(pairs)))
    )


HISTORY = _events([("u1", "a"), ("u1", "b")])
TEST = _events([("u1", "a"), ("u1", "a"), ("u2", "x"), ("u2", "x"), ("u1", "c"), ("u1", "b")])


def test_kinds_come_from_the_state_before_each_batch():
    # batch 1: u1's newest is b (a is older, twice), u2 is new; batch 2 sees batch 1: u1's newest is a, u2's x
    assert own_item_kinds(HISTORY, TEST, 3).tolist() == [OLDER, OLDER, NEW_USER, NEWEST, NEW_TO_USER, OLDER]


def test_per_event_each_event_sees_the_one_before_it():
    assert own_item_kinds(HISTORY, TEST, 1).tolist() == [OLDER, NEWEST, NEW_USER, NEWEST, NEW_TO_USER, OLDER]
    # in one batch every event is judged from the history alone
    assert own_item_kinds(HISTORY, TEST, 6).tolist() == [OLDER, OLDER, NEW_USER, NEW_USER, NEW_TO_USER, NEWEST]
