import torch

from model_server.tgat.graph_state import merge_sorted


def test_merge_sorted_equals_sorting_the_union():
    generator = torch.Generator().manual_seed(0)
    for size, new in ((0, 5), (7, 0), (1000, 37), (50, 50)):
        everything = torch.randperm(10 * (size + new) + 1, generator=generator)[:size + new]
        keys, added = torch.sort(everything[:size]).values, torch.sort(everything[size:]).values
        assert torch.equal(merge_sorted(keys, added), torch.sort(everything).values)
