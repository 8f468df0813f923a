import math

import torch

from model_server import pairs
from model_server.pairs import SHIFT, KeyLog, PairSet, merge_sorted, ranges_of


def test_merge_sorted_equals_sorting_the_union():
    generator = torch.Generator().manual_seed(0)
    for size, new in ((0, 5), (7, 0), (1000, 37), (50, 50)):
        everything = torch.randperm(10 * (size + new) + 1, generator=generator)[: size + new]
        keys, added = torch.sort(everything[:size]).values, torch.sort(everything[size:]).values
        assert torch.equal(merge_sorted(keys, added), torch.sort(everything).values)


def test_pair_set_matches_python_sets_under_repeated_adds():
    generator = torch.Generator().manual_seed(1)
    pairs, reference = PairSet(), {}
    for _ in range(20):
        a, b = torch.randint(0, 30, (40,), generator=generator), torch.randint(0, 1000, (40,), generator=generator)
        pairs.add(a, b)
        for x, y in zip(a.tolist(), b.tolist()):
            reference.setdefault(x, set()).add(y)
    assert len(pairs) == sum(len(v) for v in reference.values())
    asked = torch.tensor([3, -1, 29, 3, 31])  # a repeated, an unknown (-1) and an absent first index
    rows, seconds = pairs.rows_of(asked)
    got = {}
    for row, second in zip(rows.tolist(), seconds.tolist()):
        got.setdefault(row, set()).add(second)
    expected = {row: reference[a] for row, a in enumerate(asked.tolist()) if a in reference}
    assert got == expected
    assert {tuple(p) for p in pairs.pairs().tolist()} == {(a, b) for a, bs in reference.items() for b in bs}


def _key_log_rounds(limit_keys: int, batch: int, seed: int):
    """(KeyLog, {key: value}) after rounds of finds, value updates and adds of random keys; the small thresholds
    make `recent` merge into `main` several times."""
    generator = torch.Generator().manual_seed(seed)
    log, reference = KeyLog(), {}
    for _ in range(60):
        wanted = torch.unique(torch.randint(0, limit_keys, (batch,), generator=generator))
        values = torch.randint(0, 1_000_000, (wanted.numel(),), generator=generator)
        found, known = log.find(wanted)
        assert found.tolist() == [k in reference for k in wanted.tolist()]
        assert known[found].tolist() == [reference[k] for k in wanted[found].tolist()]
        log.set_values(wanted[found], values[found])
        log.add(wanted[~found], values[~found])
        reference.update(zip(wanted.tolist(), values.tolist()))
    return log, reference


def test_key_log_equals_one_sorted_array(monkeypatch):
    monkeypatch.setattr(pairs, "_MIN_RECENT", 16)
    monkeypatch.setattr(pairs, "_RECENT_SCALE", 4)
    for limit_keys, batch, seed in ((50, 7, 0), (5_000, 90, 1), (1 << 40, 64, 2)):
        log, reference = _key_log_rounds(limit_keys, batch, seed)
        firsts = torch.tensor([0, 3, 0, 255, 1 << 7, -1])  # repeated, absent and negative firsts
        firsts = torch.cat([firsts, torch.unique(torch.tensor(sorted(reference)) >> SHIFT)[:5]])
        rows, keys, values = log.ranges_of(firsts)  # read before compaction: both arrays searched
        assert len(log) == len(reference)
        expected_keys = torch.tensor(sorted(reference), dtype=torch.long)
        expected_rows, at = ranges_of(expected_keys, firsts)
        assert torch.equal(rows, expected_rows) and torch.equal(keys, expected_keys[at])  # the same order too
        assert values.tolist() == [reference[k] for k in keys.tolist()]
        assert torch.equal(log.keys, expected_keys)
        assert log.values.tolist() == [reference[k] for k in sorted(reference)]
        assert log.recent.numel() == 0  # compacted by the read of every key


def test_key_log_keeps_recent_small(monkeypatch):
    monkeypatch.setattr(pairs, "_MIN_RECENT", 16)
    monkeypatch.setattr(pairs, "_RECENT_SCALE", 4)
    log = KeyLog()
    for start in range(0, 20_000, 50):
        log.add(torch.arange(start, start + 50) * 3)
        assert log.recent.numel() < max(16, math.isqrt(4 * log.main.numel())) + 50
    assert len(log) == 20_000 and torch.equal(log.keys, torch.arange(20_000) * 3)


def test_a_pair_set_keeps_each_pairs_newest_time_and_forgets_the_pairs_before_a_cutoff():
    pairs = PairSet()
    pairs.add(torch.tensor([1, 1, 2]), torch.tensor([5, 5, 7]), torch.tensor([300, 100, 200]))
    pairs.add(torch.tensor([2, 3]), torch.tensor([7, 9]), torch.tensor([150, 50]))  # older: 2-7 keeps 200
    assert pairs.forget_before(120) == 1  # 3-9 (50)
    assert pairs.pairs().tolist() == [[1, 5], [2, 7]]
    pairs.add(torch.tensor([1]), torch.tensor([5]), torch.tensor([400]))
    assert pairs.forget_before(250) == 1  # 2-7 (200); 1-5 moved to 400
    assert pairs.pairs().tolist() == [[1, 5]]
    assert pairs.forget_before(250) == 0
