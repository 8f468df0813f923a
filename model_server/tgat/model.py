"""The temporal graph attention network and its score.

Follows TGAT (Xu et al., "Inductive representation learning on temporal graphs", ICLR 2020): L layers of
multi-head attention over each node's K most recent neighbours, with a learnable harmonic time encoding
cos(ω Δt + φ) of each edge's age; and TGN's attention embedding (Rossi et al., "Temporal graph networks",
2020, the `GraphAttentionEmbedding` of PyG's examples/tgn.py), which feeds [time encoding ‖ edge features]
as edge_attr to PyG's TransformerConv. Edge features here are a learned event-type embedding.

Unlike TGAT, Δt is measured from the node's own newest edge, not from the query time, so an embedding is a
function of graph state only (DESIGN.md) and a node changes only when its 2-hop neighbourhood changes.

Score(u, i) = <z_u, z_i> + repeat(u, i): the dot product ranks the full catalogue with one matrix product,
and repeat(u, i) is a learned function of (age, type, recency rank) of the user's own edges to i, added only
where such an edge is among the user's K most recent. Repeat interactions dominate JODIE Wikipedia
(EdgeBank, Poursafaei et al., NeurIPS 2022, ranks well on memory alone); here the signal is learned.

Two more learned terms, both read from graph state only:
- prior(i), an item popularity/recency prior: a small MLP of the ages of the item's K buffered edges
  relative to the graph's newest event (age of the k-th newest edge ~ k / recent rate, the quantity a
  time-decayed popularity count estimates) and of the item's all-time degree. Popularity bias is what a pure dot product misses where there
  are no repeats (MovieLens): Ji et al., "A re-visit of the popularity baseline in recommender systems",
  SIGIR 2020, show time-aware popularity as a strong baseline, and popularity-aware scoring adds an item
  prior to the user-item match as in the popularity term of Zhao et al., "Popularity bias is not always
  evil" (TIDE, 2022). It is also the whole score of a user never seen before (with the mean user vector).
- seen(u, i), a learned scalar added where the graph holds any (u, i) edge (also past the K recent slots):
  MovieLens users rate a film once (the model learns a penalty), Wikipedia editors return (a bonus).

And two heuristic signals of Cornell et al., "On the Power of Heuristics in Temporal Graphs" (2025, arXiv
2502.04910), whose training-free "local recency, then global popularity" ranked REES46 better than the learned
terms alone (test MRR 0.2855 vs 0.2690), both read from graph state only:
- own_recency(u, i) = 1 - r / K for the r-th most recent distinct item of the user's K buffered slots (local
  recency), times own_recency_weight;
- popularity(i) = log(1 + distinct users of i) (global popularity), times popularity_weight on the items the
  user has no edge to ("then every other item by popularity"), and times new_user_popularity_weight in a new
  user's score (the prior's only companion there).
  Either count may be the item's recent global popularity instead, log(1 + R_h(i)) with R_h the distinct users
  weighted 2^(-age / h) by the age of their newest event with the item (graph_state.py): the heuristic's
  windowed variant, which ranked MovieLens's new users better than the all-time count. The half-life (one for
  users with edges, one for new users; 0: all-time) is chosen on validation with the weights.
And one more signal, read from graph state and the items' side info:
- shared_attributes(u, i) = [i has the category of the user's newest item] + [i has its brand], times
  attribute_weight: a shopper who views a phone goes on to other phones, often of the same make. The learned
  match sees categories and brands only through embeddings, which left it level with the heuristic on REES46;
  with this term, chosen as a tier (1000), REES46's validation MRR went 0.2745 -> 0.2858 and test MRR
  0.2857 -> 0.2989 over three seeds (`streamrec eval --dataset rees46 --models streamrec --seeds 0,1,2`,
  54fd57a -> e868464; docs/changelog.md).
The learned prior is fitted jointly with the match and ranked new users' and new pairs' items worse than the
count, and the learned repeat term orders a user's own items no better than recency, so these weights are not
learned: they are chosen after training on validation MRR from grids (train.py), as the heuristic's own variant
is. They are buffers (saved with the weights), 0 while training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import TransformerConv

from .features import ITEM, NodeInputs
from .graph_state import NUM_TYPES, TemporalGraph
from .neighbours import EMPTY
from .sampler import sample_blocks
from .slot_attention import attend_slots


@dataclass
class TGATConfig:
    dim: int = 64
    heads: int = 2
    layers: int = 2
    k: int = 10  # recent neighbours per node
    time_dim: int = 16
    type_dim: int = 8
    dropout: float = 0.1
    id_dropout: float = 0.1
    text_dim: int = 384
    repeat: bool = True  # add the learned repeat/recency term to the dot product
    popularity: bool = True  # add the learned item prior (from the item's buffered edge ages)
    seen: bool = True  # add a learned term where the user has any edge to the item
    popularity_blend: bool = True  # add popularity_weight * log(1 + item degree), the weight chosen on validation

    def to_dict(self) -> dict:
        return asdict(self)


class TimeEncoding(nn.Module):
    """TGAT's functional time encoding cos(ω Δt + φ), ω initialised on a geometric grid (as GraphMixer)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(1, dim)
        with torch.no_grad():
            self.linear.weight.copy_((1.0 / 10 ** torch.linspace(0, 6, dim)).reshape(dim, 1))
            self.linear.bias.zero_()

    def forward(self, dt: torch.Tensor) -> torch.Tensor:
        return torch.cos(self.linear(dt.reshape(-1, 1)))


class TemporalGAT(nn.Module):
    def __init__(self, config: TGATConfig):
        super().__init__()
        self.config = config
        c = config
        self.inputs = NodeInputs(c.dim, c.text_dim, c.id_dropout)
        self.time_encoding = TimeEncoding(c.time_dim)
        self.type_embedding = nn.Embedding(NUM_TYPES, c.type_dim)
        edge_dim = c.time_dim + c.type_dim
        self.convs = nn.ModuleList(
            TransformerConv(c.dim, c.dim // c.heads, heads=c.heads, dropout=c.dropout, edge_dim=edge_dim)
            for _ in range(c.layers)
        )
        self.slot_embedding = nn.Embedding(c.k, c.type_dim)
        self.repeat_head = nn.Sequential(nn.Linear(edge_dim + c.type_dim, 32), nn.ReLU(), nn.Linear(32, 1))
        if c.popularity:
            self.popularity_head = nn.Sequential(nn.Linear(2 * c.k + 1, 32), nn.ReLU(), nn.Linear(32, 1))
        if c.seen:
            self.seen_bias = nn.Parameter(torch.zeros(1))
        # chosen on validation after training (train.py), not by the gradient: one for users with edges, one
        # for new users, whose whole score is the prior (their ranking is a separate choice, as in the heuristics)
        self.register_buffer("popularity_weight", torch.zeros(1))
        self.register_buffer("new_user_popularity_weight", torch.zeros(1))
        self.register_buffer("own_recency_weight", torch.zeros(1))
        self.register_buffer("attribute_weight", torch.zeros(1))
        # the half-life (ms, 0: all-time) of the popularity count, for users with edges and for new users:
        # integers, so that a cast of the model to another float dtype leaves them as chosen
        self.register_buffer("popularity_half_life", torch.zeros(1, dtype=torch.long))
        self.register_buffer("new_user_popularity_half_life", torch.zeros(1, dtype=torch.long))

    def edge_features(self, etype: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.time_encoding(dt), self.type_embedding(etype)], dim=-1)

    def embed(self, graph: TemporalGraph, targets: torch.Tensor, attention: bool = False):
        """z for unique(targets) (sorted); with attention=True also the last layer's attention per buffer slot
        as [len(targets), K] (mean over heads; 0 where the slot is empty)."""
        blocks = sample_blocks(graph.buffer, targets, self.config.layers)
        first = blocks[0].src_nodes
        h = self.inputs(first, graph.node_kind[first], graph.node_local[first], graph.side)
        alpha = None
        for depth, (block, conv) in enumerate(zip(blocks, self.convs)):
            edge_attr = self.edge_features(block.edge_type, block.edge_dt)
            pair = (h, h[block.dst_in_src])
            last = depth == len(blocks) - 1
            if last and attention:
                h, (_, alpha) = conv(pair, block.edge_index, edge_attr, return_attention_weights=True)
            else:
                h = conv(pair, block.edge_index, edge_attr)
            if not last:
                h = F.relu(h)
        if not attention:
            return h
        return h, self._slot_attention(blocks[-1], alpha)

    def node_inputs(self, graph: TemporalGraph, nodes: torch.Tensor) -> torch.Tensor:
        return self.inputs(nodes, graph.node_kind[nodes], graph.node_local[nodes], graph.side)

    def embed_layer(self, graph: TemporalGraph, depth: int, targets: torch.Tensor, previous, attention: bool = False):
        """Layer `depth` (0-based) for sorted unique `targets`, reading the layer below through
        previous(nodes) -> [len(nodes), dim] (sorted unique nodes): the function embed() computes, in eval mode,
        on the targets' dense buffer rows (slot_attention.py); with attention=True also the attention per slot
        as [len(targets), K] (mean over heads; 0 where the slot is empty)."""
        nbr, etype, ts = graph.buffer.rows(targets)
        filled = nbr != EMPTY
        slot_node = torch.where(filled, nbr, targets[:, None])  # an empty slot reads its target (masked out)
        src, position = torch.unique(torch.cat([targets, slot_node.reshape(-1)]), return_inverse=True)
        h = previous(src)
        dt = (ts[:, :1] - ts)[filled].to(torch.float32) / 1000.0  # age from the target's newest edge
        edge_attr = self.edge_features(etype[filled], dt)
        n = targets.numel()
        out, alpha = attend_slots(self.convs[depth], h[position[:n]], h, position[n:].view_as(nbr), filled, edge_attr)
        if depth < len(self.convs) - 1:
            return F.relu(out)
        if not attention:
            return out
        return out, alpha.mean(dim=-1).to(torch.float32)  # bf16 under autocast

    def _slot_attention(self, block, alpha: torch.Tensor) -> torch.Tensor:
        """[len(block.dst_nodes), K] attention per buffer slot (mean over heads; 0 where the slot is empty)."""
        att = torch.zeros(block.dst_nodes.numel(), self.config.k, device=alpha.device)
        att[block.edge_index[1], block.edge_slot] = alpha.mean(dim=1).detach().to(att.dtype)  # bf16 under autocast
        return att

    def embed_all(self, graph: TemporalGraph, chunk: int = 65536) -> torch.Tensor:
        """Every node's embedding, layer by layer (each node's layer-l output computed once, targets in chunks):
        the full recompute that incremental refreshes are checked and benchmarked against."""
        nodes = torch.arange(graph.num_nodes, device=graph.device)
        h = self.inputs(nodes, graph.node_kind[nodes], graph.node_local[nodes], graph.side)
        for depth, conv in enumerate(self.convs):
            outputs = []
            for dst in nodes.split(chunk):
                nbr, etype, ts = graph.buffer.rows(dst)
                valid = nbr != EMPTY
                dst_pos = torch.arange(dst.numel(), device=dst.device)[:, None].expand_as(nbr)[valid]
                dt = (ts[:, :1] - ts)[valid].to(torch.float32) / 1000.0
                edge_index = torch.stack([nbr[valid], dst_pos])
                outputs.append(conv((h, h[dst]), edge_index, self.edge_features(etype[valid], dt)))
            h = torch.cat(outputs)
            if depth < len(self.convs) - 1:
                h = F.relu(h)
        return h

    def repeat_terms(self, graph: TemporalGraph, user_nodes: torch.Tensor):
        """(row, item node, value) for each non-empty slot of the users' rows: the repeat/recency term."""
        nbr, etype, ts = graph.buffer.rows(user_nodes)
        valid = nbr != EMPTY
        if not self.config.repeat or not bool(valid.any()):
            empty = torch.zeros(0, dtype=torch.long, device=nbr.device)
            return empty, empty, torch.zeros(0, device=nbr.device)
        rows = torch.arange(user_nodes.numel(), device=nbr.device)[:, None].expand_as(nbr)[valid]
        slots = torch.arange(self.config.k, device=nbr.device)[None, :].expand_as(nbr)[valid]
        dt = (ts[:, :1] - ts)[valid].to(torch.float32) / 1000.0
        features = torch.cat([self.edge_features(etype[valid], dt), self.slot_embedding(slots)], dim=-1)
        return rows, nbr[valid], self.repeat_head(features).squeeze(-1)

    def item_prior(self, graph: TemporalGraph, item_nodes: torch.Tensor, new_user: bool = False) -> torch.Tensor:
        """[len(item_nodes)] popularity/recency prior: the learned prior plus the chosen weight (for users with
        edges, or for new users) of the global popularity; 0 when the term is off."""
        if not self.config.popularity:
            return torch.zeros(item_nodes.numel(), device=item_nodes.device)
        nbr, _, ts = graph.buffer.rows(item_nodes)
        valid = (nbr != EMPTY).to(torch.float32)
        log_degree = torch.log1p(graph.degree[item_nodes].to(torch.float32))[:, None] / 5.0
        return self._prior(graph, item_nodes, ts, valid, log_degree, new_user)

    def catalogue_prior(self, graph: TemporalGraph, n_items: int, new_user: bool = False) -> torch.Tensor:
        """item_prior of the first n_items items (the catalogue), from the graph's item-major copy of their
        inputs (catalogue_rows.py) instead of a gather per batch: the same values."""
        item_nodes = graph.item_node[:n_items]
        if not self.config.popularity:
            return torch.zeros(n_items, device=item_nodes.device)
        return self._prior(graph, item_nodes, *graph.catalogue.read(graph, n_items), new_user)

    def _prior(self, graph, item_nodes, ts, valid, log_degree, new_user: bool) -> torch.Tensor:
        weight = self.new_user_popularity_weight if new_user else self.popularity_weight
        learned = self.learned_prior(graph, ts, valid, log_degree)
        return learned + weight * self.global_popularity(graph, item_nodes, new_user)

    def chosen_half_lives(self) -> list[int]:
        """The chosen half-lives (ms) of the popularity counts that are recent, not all-time."""
        return [h for h in (int(self.popularity_half_life), int(self.new_user_popularity_half_life)) if h > 0]

    def global_popularity(self, graph: TemporalGraph, item_nodes: torch.Tensor, new_user: bool = False) -> torch.Tensor:
        """[len(item_nodes)] the popularity count with the chosen half-life (of new users' or of the others')."""
        half_life = self.new_user_popularity_half_life if new_user else self.popularity_half_life
        return self.popularity_count(graph, item_nodes, int(half_life))

    def popularity_count(self, graph: TemporalGraph, item_nodes: torch.Tensor, half_life: int = 0) -> torch.Tensor:
        """[len(item_nodes)] log(1 + distinct users of the item so far) (half_life <= 0), or log(1 + R_h), its
        users weighted 2^(-age / h) by the age of their newest event with it (graph_state.py); 0 where the blend
        is off. Distinct users rather than events: the graph store keeps one edge per pair, and on REES46
        validation the heuristic ranked as well with it (MRR 0.2742 vs 0.2736 with event counts)."""
        if not (self.config.popularity and self.config.popularity_blend):  # the blend lives in the prior
            return torch.zeros(item_nodes.numel(), device=item_nodes.device)
        if half_life <= 0:
            return torch.log1p(graph.degree[item_nodes].to(torch.float32))
        return torch.log1p(graph.recent_popularity(item_nodes, half_life)).to(torch.float32)

    def learned_prior(
        self, graph: TemporalGraph, ts: torch.Tensor, valid: torch.Tensor, log_degree: torch.Tensor
    ) -> torch.Tensor:
        """The popularity head on the ages of each item's K buffered edges (`ts`, where `valid`), measured from the
        graph's newest event (not the wall clock), and on its log-degree."""
        age = (graph.newest_time() - ts).clamp(min=0).to(torch.float32) / 1000.0
        features = torch.cat([torch.log1p(age) / 10.0 * valid, valid, log_degree], dim=-1)
        return self.popularity_head(features).squeeze(-1)

    def own_recency(self, graph: TemporalGraph, user_nodes: torch.Tensor):
        """(row, item node, 1 - r / K) for each distinct item of the users' K recent slots, r its recency rank
        among them (0: the item the user touched last): the local recency of Cornell et al. (2025), read from the
        buffer. Weighted by own_recency_weight (chosen on validation): a large weight puts the user's recent
        items first, newest first, as the heuristic does; a small one lets the learned terms reorder them."""
        nbr, _, _ = graph.buffer.rows(user_nodes)
        valid = nbr != EMPTY
        k = nbr.shape[1]
        earlier = torch.ones(k, k, dtype=torch.bool, device=nbr.device).tril(-1)  # [slot, earlier slot]
        repeated = ((nbr[:, :, None] == nbr[:, None, :]) & earlier[None]).any(-1)  # item already in a newer slot
        first = valid & ~repeated
        rank = torch.cumsum(first, dim=1) - 1
        rows = torch.arange(user_nodes.numel(), device=nbr.device)[:, None].expand_as(nbr)[first]
        return rows, nbr[first], 1.0 - rank[first].to(torch.float32) / k

    def shared_attributes(
        self, graph: TemporalGraph, user_nodes: torch.Tensor, item_local: torch.Tensor
    ) -> torch.Tensor:
        """[len(user_nodes), len(item_local)]: how many of (category, brand) the item (by item index) shares
        with the user's newest item (buffer slot 0); 0 for users without edges, and a missing attribute matches
        nothing."""
        newest = graph.buffer.rows(user_nodes)[0][:, 0]
        newest_item = torch.where(newest != EMPTY, graph.node_local[newest.clamp(min=0)], -1)
        side = graph.side
        shared = torch.zeros(user_nodes.numel(), item_local.numel(), device=item_local.device)
        for attribute_of in (side.category_of, side.brand_of):
            theirs, items = attribute_of(newest_item), attribute_of(item_local)
            shared += ((items[None, :] == theirs[:, None]) & (theirs[:, None] >= 0)).to(torch.float32)
        return shared

    @staticmethod
    def _add_shared_attributes(scores: torch.Tensor, graph: TemporalGraph, user_nodes: torch.Tensor, weight: float):
        """scores += weight * shared_attributes(...) in place: the items of each attribute value are found by a
        binary search in the side info's items_by (sorted once, not per batch) and only the matching (user, item)
        pairs are counted, so the result is the dense form's to the last bit without comparing every user with
        every item."""
        n_users, n_items = scores.shape
        newest = graph.buffer.rows(user_nodes)[0][:, 0]
        newest_item = torch.where(newest != EMPTY, graph.node_local[newest.clamp(min=0)], -1)
        shared = torch.zeros(n_users * n_items, dtype=scores.dtype, device=scores.device)
        for attribute in ("category", "brand"):
            items, values = graph.side.items_by(attribute)
            theirs = getattr(graph.side, f"{attribute}_of")(newest_item)
            first = torch.searchsorted(values, theirs, right=False)
            count = torch.where(theirs >= 0, torch.searchsorted(values, theirs, right=True) - first, 0)
            rows = torch.repeat_interleave(torch.arange(n_users, device=scores.device), count)
            offset = torch.arange(int(count.sum()), device=scores.device) - torch.repeat_interleave(
                torch.cumsum(count, 0) - count, count
            )
            cols = items[torch.repeat_interleave(first, count) + offset]
            keep = cols < n_items  # an item with side info that is not in this catalogue yet
            matches = rows[keep] * n_items + cols[keep]
            shared.index_add_(0, matches, torch.ones(matches.numel(), dtype=scores.dtype, device=scores.device))
        scores.add_(shared.view_as(scores) * weight)  # weight * count first, as the dense form's product

    def _pair_terms(self, graph: TemporalGraph, user_nodes: torch.Tensor, among: torch.Tensor | None = None):
        """(row, item node, value) of the repeat, seen and own-recency terms, concatenated; given the candidates
        `among` (sorted unique), the seen term may leave out other items (graph_state.seen_pairs)."""
        rows, nodes, values = self.repeat_terms(graph, user_nodes)
        if bool(self.own_recency_weight != 0):
            recent_rows, recent_nodes, recency = self.own_recency(graph, user_nodes)
            rows, nodes = torch.cat([rows, recent_rows]), torch.cat([nodes, recent_nodes])
            values = torch.cat([values, self.own_recency_weight * recency])
        if self.config.seen or bool(self.popularity_weight != 0):
            seen_rows, seen_nodes = graph.seen_pairs(user_nodes, among)
            seen_values = self.seen_bias.expand(seen_rows.numel()) if self.config.seen else 0.0
            # the global popularity ranks only the items the user has no edge to (the heuristic's "then every
            # other item by popularity"): taken back off the user's own items, which their own terms order
            seen_values = seen_values - self.popularity_weight * self.global_popularity(graph, seen_nodes)
            rows, nodes = torch.cat([rows, seen_rows]), torch.cat([nodes, seen_nodes])
            values = torch.cat([values, seen_values])
        return rows, nodes, values

    @staticmethod
    def _add_at(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """scores[rows, cols] += values, repeated (row, col) pairs summed; out of place (training)."""
        flat = torch.zeros(scores.numel(), device=scores.device, dtype=scores.dtype)
        flat = flat.index_add(0, rows * scores.shape[1] + cols, values)
        return scores + flat.view_as(scores)

    def score_candidates(
        self,
        graph: TemporalGraph,
        user_nodes: torch.Tensor,
        z_users: torch.Tensor,
        cand_nodes: torch.Tensor,
        z_cand: torch.Tensor,
    ) -> torch.Tensor:
        """[len(user_nodes), len(cand_nodes)] scores; cand_nodes must be sorted and unique."""
        scores = z_users @ z_cand.T + self.item_prior(graph, cand_nodes)[None, :]
        if bool(self.attribute_weight != 0):
            scores = scores + self.attribute_weight * self.shared_attributes(
                graph, user_nodes, graph.node_local[cand_nodes]
            )
        rows, items, values = self._pair_terms(graph, user_nodes, cand_nodes)
        if values.numel():
            pos = torch.searchsorted(cand_nodes, items).clamp(max=cand_nodes.numel() - 1)
            hit = cand_nodes[pos] == items
            scores = self._add_at(scores, rows[hit], pos[hit], values[hit])
        return scores

    def score_catalogue(
        self, graph: TemporalGraph, user_nodes: torch.Tensor, z_users: torch.Tensor, z_items: torch.Tensor
    ) -> torch.Tensor:
        """[len(user_nodes), n_items] scores with columns in item-index order (the recommender's catalogue)."""
        n_items = z_items.shape[0]
        scores = torch.addmm(self.catalogue_prior(graph, n_items)[None, :], z_users, z_items.T)
        if bool(self.attribute_weight != 0):
            if torch.is_grad_enabled():
                shared = self.shared_attributes(graph, user_nodes, torch.arange(n_items, device=scores.device))
                scores = scores + self.attribute_weight * shared
            else:  # serving: only the matching (user, item) pairs, never a dense [users, catalogue] comparison
                self._add_shared_attributes(scores, graph, user_nodes, float(self.attribute_weight))
        rows, nodes, values = self._pair_terms(graph, user_nodes)
        if values.numel():
            cols = graph.node_local[nodes]
            keep = (graph.node_kind[nodes] == ITEM) & (cols < n_items)
            if torch.is_grad_enabled():
                scores = self._add_at(scores, rows[keep], cols[keep], values[keep])
            else:  # serving: in place, no copy of the [users, catalogue] matrix
                scores.index_put_((rows[keep], cols[keep]), values[keep], accumulate=True)
        return scores

    def score_new_user(self, graph: TemporalGraph, z_user: torch.Tensor, z_items: torch.Tensor) -> torch.Tensor:
        """[n_items] scores for a user with no edge: the item prior (where the prior is off, the match with
        a prior user vector, e.g. the mean of the known users)."""
        if self.config.popularity:
            return self.catalogue_prior(graph, z_items.shape[0], new_user=True)
        return z_user @ z_items.T


def load_weights(model: TemporalGAT, weights: dict) -> None:
    """load_state_dict that first sizes the growing tables (id, category, brand) to the saved rows."""
    inputs = model.inputs
    for table, key in (
        (inputs.id_embedding, "inputs.id_embedding.weight"),
        (inputs.category_embedding, "inputs.category_embedding.weight"),
        (inputs.brand_embedding, "inputs.brand_embedding.weight"),
    ):
        rows = weights[key].shape[0]
        table.weight = torch.nn.Parameter(torch.zeros(rows, table.weight.shape[1], device=table.weight.device))
    # checkpoints written before the popularity blend existed scored without it (weight 0)
    # and those written before the recent popularity count with the all-time count (half-life 0), and
    # those written before the shared-attributes term without it
    weights = {
        "popularity_weight": torch.zeros(1),
        "new_user_popularity_weight": torch.zeros(1),
        "own_recency_weight": torch.zeros(1),
        "attribute_weight": torch.zeros(1),
        "popularity_half_life": torch.zeros(1, dtype=torch.long),
        "new_user_popularity_half_life": torch.zeros(1, dtype=torch.long),
        **weights,
    }
    model.load_state_dict(weights)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def ensure_tables(model: TemporalGAT, n_nodes: int, n_categories: int, n_brands: int) -> None:
    model.inputs.id_embedding.ensure(n_nodes)
    model.inputs.category_embedding.ensure(n_categories)
    model.inputs.brand_embedding.ensure(n_brands)


__all__ = ["TGATConfig", "TemporalGAT", "TimeEncoding", "ensure_tables", "load_weights", "count_parameters"]
