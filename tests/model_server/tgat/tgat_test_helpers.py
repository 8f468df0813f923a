"""Shared helpers of the tgat tests (a uniquely named module, so that no other conftest shadows it)."""


def graph_store_edges(batch):
    """What the graph store holds for a batch: one edge per (user, item, type) with its newest last_ts."""
    newest = {}
    for user, item, kind, ts in zip(batch.users, batch.items, batch.types, batch.ts):
        key = (user, item, kind)
        newest[key] = max(newest.get(key, ts), ts)
    keys = list(newest)
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [newest[k] for k in keys]
