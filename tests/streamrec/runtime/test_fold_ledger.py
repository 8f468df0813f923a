"""The fold ledger: each event reaches the model once per worker, and nothing is ever reported folded that was not."""

from dataclasses import dataclass

from streamrec.runtime.fold_ledger import FoldLedger


@dataclass(frozen=True)
class At:
    partition: int
    offset: int


def offsets(events) -> list[int]:
    return [e.offset for e in events]


def test_one_worker_folds_each_event_once_and_the_feed_leaves_its_partitions_alone():
    ledger = FoldLedger()
    ledger.restart({0: 10, 1: 0})  # the group's committed offsets: 0..9 of partition 0 are in the graph
    ledger.own({0, 1})
    assert not ledger.left_to_agent(0)  # where the agent starts is known from its first events only
    batch = [At(0, 10), At(0, 11), At(1, 0)]
    assert ledger.unfolded(batch) == batch
    ledger.folded(batch)
    assert ledger.left_to_agent(0) and ledger.left_to_agent(1)
    assert ledger.unfolded([At(0, 9), At(0, 11), At(0, 12), At(1, 0)]) == [At(0, 12)]  # a replay is skipped
    assert ledger.folded_through() == {0: 11, 1: 0}
    assert ledger.left_to_agent(0)


def test_a_partition_taken_over_ahead_of_the_feed_is_read_through_before_it_is_left_to_the_agent():
    ledger = FoldLedger()
    ledger.restart({0: 0})
    ledger.read_through({0: (0, 4)})  # the feed folded 0..4 while another worker owned the partition
    ledger.own({0})
    ledger.folded([At(0, 8), At(0, 9)])  # the agent starts at the group's committed offset 8
    assert not ledger.left_to_agent(0)  # 5..7 are missing: the feed keeps reading
    assert ledger.next_unfolded(0) == 5
    assert ledger.unfolded([At(0, 5), At(0, 7), At(0, 8), At(0, 9)]) == [At(0, 5), At(0, 7)]
    ledger.read_through({0: (5, 9)})  # (a record it dead-lettered counts as read)
    assert ledger.left_to_agent(0)
    assert ledger.folded_through() == {0: 9}


def test_an_owned_partition_the_agent_has_not_started_is_read_by_the_feed():
    # the agent takes a partition over at a committed offset past what the feed has read, and the partition
    # stays quiet: only the feed can bring the model the events in between
    ledger = FoldLedger()
    ledger.restart({0: 0})
    ledger.read_through({0: (0, 4)})
    ledger.own({0})
    assert not ledger.left_to_agent(0) and ledger.next_unfolded(0) == 5
    ledger.folded([At(0, 5)])
    assert ledger.left_to_agent(0)
    ledger.own({0})  # the next rebalance starts the partition again at the committed offset
    assert not ledger.left_to_agent(0)


def test_a_read_that_starts_past_the_mark_proves_nothing():
    ledger = FoldLedger()
    ledger.restart({0: 0})
    ledger.read_through({0: (3, 5)})
    assert ledger.unfolded([At(0, 0), At(0, 3)]) == [At(0, 0), At(0, 3)]
    assert ledger.next_unfolded(0) == 0


def test_a_partition_given_up_is_read_again_where_the_model_state_ends():
    ledger = FoldLedger()
    ledger.restart({0: 0})
    ledger.own({0})
    ledger.folded([At(0, 0), At(0, 1), At(0, 2)])
    assert ledger.left_to_agent(0)
    ledger.own(set())
    assert not ledger.left_to_agent(0)
    assert ledger.next_unfolded(0) == 3


def test_after_a_swap_the_feed_reads_again_what_the_old_model_held_beyond_the_graph():
    ledger = FoldLedger()
    ledger.restart({0: 0})
    ledger.own({0})
    ledger.folded([At(0, k) for k in range(20)])
    # the new model's state is the graph as of committed offset 12: 12..19 may not have been written yet
    ledger.restart({0: 12}, must_reach=ledger.folded_through())
    assert not ledger.left_to_agent(0)
    assert ledger.unfolded([At(0, 12), At(0, 19)]) == [At(0, 12), At(0, 19)]
    ledger.folded([At(0, 20)])  # the agent goes on meanwhile
    ledger.read_through({0: (12, 18)})
    assert not ledger.left_to_agent(0)
    ledger.read_through({0: (19, 19)})
    assert ledger.left_to_agent(0) and ledger.folded_through() == {0: 20}


def test_without_a_known_start_the_first_event_starts_the_mark():
    ledger = FoldLedger()
    ledger.restart({})
    assert ledger.unfolded([At(3, 7)]) == [At(3, 7)]
    ledger.folded([At(3, 7), At(3, 8)])
    assert ledger.unfolded([At(3, 8), At(3, 9)]) == [At(3, 9)]


def test_a_new_run_past_an_older_one_keeps_the_feed_reading_through_both():
    ledger = FoldLedger()
    ledger.restart({0: 0})
    ledger.own({0})
    ledger.folded([At(0, 5)])
    ledger.folded([At(0, 9)])  # (the older run is forgotten: read and folded again, never skipped)
    assert ledger.unfolded([At(0, 5), At(0, 9)]) == [At(0, 5)]
    ledger.read_through({0: (0, 8)})
    assert ledger.left_to_agent(0) and ledger.folded_through() == {0: 9}
