"""What a serving temporal GAT keeps in memory, by component, for the Scaling section's per-million figures.

Tensors count at their allocated capacity (rows grow by doubling, so up to 2x the rows in use); the id maps
(Python dicts, lists and strings) count every container and element once (sys.getsizeof). The process around it (interpreter, torch, Faust, drivers) is measured separately by the benchmark.
"""

from __future__ import annotations

import sys

import torch


def tensor_bytes(obj, seen: set | None = None) -> int:
    """Bytes of the tensors held by `obj`'s attributes (and lists of tensors), each storage once."""
    seen = set() if seen is None else seen
    total = 0
    for value in vars(obj).values():
        for tensor in value if isinstance(value, list) else [value]:
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in seen:
                seen.add(tensor.untyped_storage().data_ptr())
                total += tensor.untyped_storage().nbytes()
    return total


def python_bytes(obj) -> int:
    """Deep size of plain Python containers (dict, list, set, tuple, str, int, objects' __dict__), each object
    once."""
    seen, total, stack = set(), 0, [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, set, tuple, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.append(vars(item))
    return total


def footprint(rec) -> dict:
    """Bytes per component of a TGATRecommender's state, with the counts they scale with."""
    graph = rec.graph
    seen: set = set()
    components = {
        "neighbour_buffer": tensor_bytes(graph.buffer, seen),
        "node_tables_pairs_degrees": tensor_bytes(graph, seen) + tensor_bytes(graph.pairs, seen),
        "item_text_and_attributes": tensor_bytes(graph.side, seen),
        "embeddings_and_layer_cache": tensor_bytes(rec.store, seen),
        "model_weights": sum(p.untyped_storage().nbytes() for p in rec.model.parameters()),
        "id_maps": python_bytes(rec.users) + python_bytes(rec.items),
        "exclusion_pairs": tensor_bytes(rec.history.seen.log, seen) + tensor_bytes(rec.history.purchased.log, seen),
    }
    return {
        "users": len(rec.users),
        "items": len(rec.items),
        "edges": len(graph.pairs),
        "bytes": components,
        "total_bytes": sum(components.values()),
    }
