"""Node inputs: learned id embeddings that grow with the id maps, item text vectors and Category/Brand nodes.

An item's input is its id embedding + a projection of its text vector (MiniLM, see text_encoder.py) + the
embeddings of its Category and Brand nodes. Category and Brand are nodes of the heterogeneous graph, but
they carry no timestamps, so instead of competing for an item's K recent-neighbour slots they enter as
static attribute neighbours (summed, as in the relational message of R-GCN, Schlichtkrull et al., 2018).
Rows added after training are zero: a new id starts from its text, its category/brand and its neighbours.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ids import IdMap

USER, ITEM = 0, 1


class GrowingEmbedding(nn.Module):
    """An embedding table without a fixed num_embeddings; unknown or negative indices read zeros."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(0, dim))

    @property
    def rows(self) -> int:
        return self.weight.shape[0]

    def ensure(self, n: int) -> None:
        if n <= self.rows:
            return
        grown = torch.zeros(max(n, 2 * self.rows), self.weight.shape[1], device=self.weight.device)
        grown[: self.rows] = self.weight.data
        self.weight = nn.Parameter(grown, requires_grad=self.weight.requires_grad)

    def init_rows(self, start: int, stop: int, std: float = 0.1) -> None:
        with torch.no_grad():
            self.weight[start:stop].normal_(0.0, std)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if self.rows == 0:
            return torch.zeros(index.shape[0], self.weight.shape[1], device=self.weight.device)
        valid = (index >= 0) & (index < self.rows)
        return self.weight[index.clamp(0, self.rows - 1)] * valid[:, None].to(self.weight.dtype)


def _lookup(table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """table[items], -1 where an item index is -1 or past the table."""
    padded = torch.cat([table, table.new_full((1,), -1)])
    inside = (items >= 0) & (items < table.shape[0])
    return padded[torch.where(inside, items, table.shape[0])]


class ItemSideInfo:
    """Per-item text vector and Category/Brand node index (-1 = none); tensors grow by doubling."""

    def __init__(self, text_dim: int, device: torch.device):
        self.text_dim = text_dim
        self.device = device
        self.categories = IdMap()
        self.brands = IdMap()
        self.text = torch.zeros(0, text_dim, device=device)
        self.category = torch.zeros(0, dtype=torch.long, device=device)
        self.brand = torch.zeros(0, dtype=torch.long, device=device)
        self._grouped: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # attribute -> items_by(attribute)

    def ensure(self, n_items: int) -> None:
        if n_items <= self.category.shape[0]:
            return
        capacity = max(n_items, 2 * self.category.shape[0], 64)
        text = torch.zeros(capacity, self.text_dim, device=self.device)
        text[: self.text.shape[0]] = self.text
        category = torch.full((capacity,), -1, dtype=torch.long, device=self.device)
        category[: self.category.shape[0]] = self.category
        brand = category.clone()
        brand[: self.brand.shape[0]] = self.brand
        self.text, self.category, self.brand = text, category, brand

    def category_of(self, items: torch.Tensor) -> torch.Tensor:
        """The category index of each item index: -1 for none, for -1, or for an item without side info yet."""
        return _lookup(self.category, items)

    def brand_of(self, items: torch.Tensor) -> torch.Tensor:
        """The brand index of each item index, -1 as in category_of."""
        return _lookup(self.brand, items)

    def items_by(self, attribute: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(items, values): the item indices that have the attribute ("category" or "brand"), sorted by its value,
        and those values, so that ranking finds each value's items by a binary search instead of sorting the
        catalogue for every batch. Kept until an item's attributes change (items added without any keep it
        valid: they match nothing)."""
        grouped = self._grouped.get(attribute)
        if grouped is None:
            values = getattr(self, attribute)
            items = torch.nonzero(values >= 0).squeeze(1)
            order = torch.argsort(values[items], stable=True)
            grouped = self._grouped[attribute] = (items[order], values[items[order]])
        return grouped

    def has_attributes(self) -> bool:
        """Whether any item has a category or a brand."""
        return bool((self.category >= 0).any() or (self.brand >= 0).any())

    def set(self, items: list[int], vectors: torch.Tensor | None, categories: list, brands: list) -> None:
        self.ensure(max(items) + 1)
        index = torch.tensor(items, dtype=torch.long, device=self.device)
        if vectors is not None:
            self.text[index] = vectors.to(self.device, torch.float32)
        self.categories.add(c for c in categories if c)
        self.brands.add(b for b in brands if b)
        self.category[index] = torch.tensor(
            [self.categories.get(c) if c else -1 for c in categories], dtype=torch.long, device=self.device
        )
        self.brand[index] = torch.tensor(
            [self.brands.get(b) if b else -1 for b in brands], dtype=torch.long, device=self.device
        )
        self._grouped.clear()

    def state_dict(self, n_items: int) -> dict:
        return {
            "text": self.text[:n_items].cpu(),
            "category": self.category[:n_items].cpu(),
            "brand": self.brand[:n_items].cpu(),
            "categories": list(self.categories.ids),
            "brands": list(self.brands.ids),
        }

    def load_state_dict(self, state: dict) -> None:
        self.categories, self.brands = IdMap(state["categories"]), IdMap(state["brands"])
        n = state["category"].shape[0]
        self.text = self.text[:0]
        self.category = self.category[:0]
        self.brand = self.brand[:0]
        self.ensure(n)
        self.text[:n] = state["text"].to(self.device)
        self.category[:n] = state["category"].to(self.device)
        self.brand[:n] = state["brand"].to(self.device)
        self._grouped.clear()


class NodeInputs(nn.Module):
    """Layer-0 embeddings h0(node) from ids, text and Category/Brand nodes."""

    def __init__(self, dim: int, text_dim: int, id_dropout: float = 0.0):
        super().__init__()
        self.id_embedding = GrowingEmbedding(dim)
        self.category_embedding = GrowingEmbedding(dim)
        self.brand_embedding = GrowingEmbedding(dim)
        self.kind_embedding = nn.Embedding(2, dim)
        self.text_projection = nn.Linear(text_dim, dim, bias=False)
        self.id_dropout = id_dropout

    def forward(self, nodes: torch.Tensor, kind: torch.Tensor, local: torch.Tensor, side: ItemSideInfo) -> torch.Tensor:
        ids = self.id_embedding(nodes)
        if self.training and self.id_dropout > 0:
            # forget some ids while learning, so that brand-new ids (zero rows) are served from text/graph
            keep = torch.rand(ids.shape[0], 1, device=ids.device) >= self.id_dropout
            ids = ids * keep
        h = self.kind_embedding(kind) + ids
        is_item = kind == ITEM
        if bool(is_item.any()):
            items = local[is_item]
            item_part = (
                self.text_projection(side.text[items])
                + self.category_embedding(side.category[items])
                + self.brand_embedding(side.brand[items])
            )
            h = h.index_add(0, torch.nonzero(is_item).squeeze(1), item_part)
        return h
