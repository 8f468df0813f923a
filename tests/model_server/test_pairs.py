import torch

from model_server.pairs import PairSet, merge_sorted


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
