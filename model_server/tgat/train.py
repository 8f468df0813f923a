"""Learning on a chronological split, TGN-style: replay the training events in time-ordered batches; each
batch is scored from the state *before* it (no leakage), then folded into the buffer. The loss is a softmax
of each true item against every item observed so far (the full-catalogue ranking that is evaluated; or, with
`negatives` > 0, against that many uniform draws; see batch_loss). After each epoch the validation events are
streamed by the one streaming loop that ranks the test part (model_server/streaming.py); training stops early
on validation MRR and keeps the best weights, and the weights of the global popularity term are chosen on the
same passes (evaluate_stream)."""
from __future__ import annotations

import copy
import itertools
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import ranking
from ..contract import InteractionBatch
from ..ids import IdMap
from ..streaming import RankedBatch, rank_then_observe
from .graph_state import TemporalGraph, type_index
from .model import TemporalGAT


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 200
    lr: float = 1e-3
    # 0: the softmax runs over every observed item (REES46 validation MRR 0.2691 vs 0.2658 with 256 uniform draws,
    # both with edgeless users scored by their match; fit ~2x slower)
    negatives: int = 0
    in_batch_negatives: bool = False  # also use the other rows' true items as negatives (popularity-biased)
    patience: int = 1
    # weights of the global popularity term tried on each validation pass (model.py; 0: the learned score alone)
    popularity_weights: tuple = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    new_user_popularity_weights: tuple = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 1000.0)
    own_recency_weights: tuple = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 1000.0)
    seed: int = 0
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def blends(self) -> dict:
        """{chosen weight name: grid tried on validation}."""
        return {"popularity_weight": self.popularity_weights, "own_recency_weight": self.own_recency_weights,
                "new_user_popularity_weight": self.new_user_popularity_weights}


@dataclass
class Events:
    """Interactions as index tensors (user index, item index, type index, epoch ms), in time order."""
    users: torch.Tensor
    items: torch.Tensor
    types: torch.Tensor
    ts: torch.Tensor

    @classmethod
    def of(cls, batch: InteractionBatch, users: IdMap, items: IdMap) -> "Events":
        """The index tensors of a batch whose ids are registered in `users` and `items`."""
        return cls(torch.tensor(users.lookup(batch.users), dtype=torch.long),
                   torch.tensor(items.lookup(batch.items), dtype=torch.long), type_index(batch.types),
                   torch.tensor(batch.ts, dtype=torch.long))

    def __len__(self) -> int:
        return self.users.shape[0]

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield Events(self.users[start:start + size], self.items[start:start + size],
                         self.types[start:start + size], self.ts[start:start + size])


def batch_loss(model: TemporalGAT, graph: TemporalGraph, batch: Events, negatives: int,
               generator: torch.Generator, in_batch: bool = False) -> torch.Tensor:
    """Softmax of each true item against every item with an edge so far (negatives <= 0: exactly the ranking
    that is evaluated, and a user's own other items, which a uniform sample rarely holds, compete with it), or
    against `negatives` uniform catalogue draws. Without in_batch the
    other rows' true items are masked out of a row's softmax: in-batch negatives are drawn in proportion to
    popularity, which (uncorrected) teaches the score to under-rate popular items (the sampling bias that
    Yi et al., "Sampling-bias-corrected neural modeling", RecSys 2019, correct with log Q); uniform draws
    keep the sampled softmax an unbiased stand-in for the full-catalogue ranking that is evaluated."""
    device = graph.device
    user_nodes = graph.user_node[batch.users.to(device)]
    item_nodes = graph.item_node[batch.items.to(device)]
    if negatives <= 0:  # every observed item: the full-catalogue ranking that is evaluated
        drawn = graph.item_node[graph.degree[graph.item_node] > 0]
    else:
        drawn = graph.item_node[torch.randint(graph.num_items, (negatives,), generator=generator).to(device)]
    candidates = torch.unique(torch.cat([item_nodes, drawn]))
    nodes = torch.unique(torch.cat([user_nodes, candidates]))
    z = model.embed(graph, nodes)
    z_users = z[torch.searchsorted(nodes, user_nodes)]
    z_candidates = z[torch.searchsorted(nodes, candidates)]
    logits = model.score_candidates(graph, user_nodes, z_users, candidates, z_candidates)
    target = torch.searchsorted(candidates, item_nodes)
    if not in_batch:
        allowed = torch.zeros_like(logits, dtype=torch.bool)
        allowed[:, torch.searchsorted(candidates, drawn)] = True
        allowed[torch.arange(target.numel(), device=device), target] = True
        logits = logits.masked_fill(~allowed, float("-inf"))
    return F.cross_entropy(logits, target)


@torch.no_grad()
def evaluate_stream(model: TemporalGAT, graph: TemporalGraph, stream: InteractionBatch, users: IdMap, items: IdMap,
                    catalogue: IdMap, known_users: set, batch_size: int, progress: bool = False,
                    desc: str = "validate", blends: dict | None = None) -> dict:
    """Streaming full-catalogue ranking of `stream` by the loop that ranks the test part
    (model_server/streaming.py): each batch is scored from the state before it, then folded into `graph`; the
    targets and the new users come from the loop's `catalogue` (the items seen so far) and `known_users`,
    both advanced in place; an item not in the catalogue is a miss; a user without an edge is scored as
    serving scores a user never seen (score_new_user); ties count as half. So the early-stopping figure is the
    figure that is reported. `users` and `items` are the model's id maps (every id of `stream` registered).

    `blends` {chosen weight name: grid} (names of the model's chosen buffers, see CHOSEN_WEIGHTS) are tried as
    extra weights of the model's heuristic terms on the same pass (one state, many candidates, as the
    heuristics of Cornell et al. 2025 choose their variant): users with edges over every (popularity,
    own-recency) pair, new users over the new-user popularity grid, chosen apart (their events are apart).
    The figures returned are those of the best candidates by MRR, and their weights under their names."""
    model.eval()
    candidates = _blend_candidates(blends)
    totals = {part: {c: dict.fromkeys(FIGURES, 0.0) for c in grid} for part, grid in candidates.items()}
    item_of = _CatalogueItems(catalogue, items)
    bar = tqdm(total=len(stream), desc=desc, disable=not progress, leave=False)

    def rank(batch: RankedBatch) -> None:
        scores, terms, column_of_item = _validation_batch(model, graph, Events.of(batch.events, users, items))
        if scores.shape[1] != batch.catalogue_size:
            raise ValueError(f"the graph ranks {scores.shape[1]} items but the catalogue holds {batch.catalogue_size}")
        targets = _model_columns(batch.targets, item_of.indices(batch.catalogue_size), column_of_item)
        for part, rows in (("returning", ~batch.new_user), ("new", batch.new_user)):
            part_terms = [term[rows] for term in terms[part]]
            for candidate, sums in totals[part].items():
                blended = scores[rows] + sum(w * term for w, term in zip(candidate, part_terms))
                _add_ranking_figures(sums, *ranking.rank_counts(blended, targets[rows]))

    def observe(batch: InteractionBatch) -> None:
        events = Events.of(batch, users, items)
        graph.insert(events.users, events.items, events.types, events.ts)
        bar.update(len(batch))

    rank_then_observe(stream, batch_size, catalogue, known_users, rank, observe)
    bar.close()
    n = len(stream)
    chosen = {part: max(grid, key=lambda c: (totals[part][c]["mrr"], -grid.index(c))) for part, grid in candidates.items()}
    figures = {name: sum(totals[part][chosen[part]][name] for part in candidates) / max(n, 1) for name in FIGURES}
    weights = dict(zip(("popularity_weight", "own_recency_weight"), chosen["returning"]))
    return {**figures, "events": n, **weights, "new_user_popularity_weight": chosen["new"][0]}


FIGURES = ("mrr", "hits@10", "recall@20", "ndcg@20")
CHOSEN_WEIGHTS = ("popularity_weight", "own_recency_weight", "new_user_popularity_weight")


def _blend_candidates(blends: dict | None) -> dict:
    """{part: candidate weight tuples}: (popularity, own recency) pairs for returning users, the new-user
    popularity weight for new users; a weight without a grid is tried at 0 only."""
    grids = {name: tuple((blends or {}).get(name, (0.0,))) for name in CHOSEN_WEIGHTS}
    return {"returning": list(itertools.product(grids["popularity_weight"], grids["own_recency_weight"])),
            "new": [(w,) for w in grids["new_user_popularity_weight"]]}


class _CatalogueItems:
    """The model's item index of each catalogue item, extended as the catalogue grows (as the harness maps its
    catalogue to a model's columns)."""

    def __init__(self, catalogue: IdMap, items: IdMap) -> None:
        self.catalogue, self.items = catalogue, items
        self.index = torch.zeros(0, dtype=torch.long)

    def indices(self, n_catalogue: int) -> torch.Tensor:
        if self.index.shape[0] < n_catalogue:
            fresh = self.items.lookup(self.catalogue.ids[self.index.shape[0]:n_catalogue])
            self.index = torch.cat([self.index, torch.tensor(fresh, dtype=torch.long)])
        return self.index


def _model_columns(targets: torch.Tensor, item_of_catalogue: torch.Tensor, column_of_item: torch.Tensor) -> torch.Tensor:
    """The loop's catalogue targets as columns of the model's scores (-1 stays a miss, and so does an item the
    model does not rank). A ranking does not depend on the order of its columns, so the model keeps its own."""
    out = torch.full_like(targets, -1)
    known = targets >= 0
    if bool(known.any()):
        item = item_of_catalogue[targets[known]]
        out[known] = torch.where(item >= 0, column_of_item[item.clamp(min=0)], torch.full_like(item, -1))
    return out


def _validation_batch(model: TemporalGAT, graph: TemporalGraph, batch: Events):
    """(scores, {part: heuristic terms}, each item index's column or -1) of one batch, on CPU, one row per
    event, the columns restricted to the observed items in item order: the scores as served, and the terms
    whose weights are being chosen."""
    device = graph.device
    item_nodes = graph.item_node
    user_nodes = graph.user_node[batch.users.to(device)]
    nodes = torch.unique(torch.cat([user_nodes, item_nodes]))
    z = model.embed(graph, nodes)
    z_items = z[torch.searchsorted(nodes, item_nodes)]
    scores = model.score_catalogue(graph, user_nodes, z[torch.searchsorted(nodes, user_nodes)], z_items)
    new_user = graph.degree[user_nodes] == 0
    if bool(new_user.any()):
        scores[new_user] = model.score_new_user(graph, torch.zeros_like(z_items[0]), z_items)
    observed = graph.degree[item_nodes] > 0
    column_of_item = torch.where(observed, torch.cumsum(observed, 0) - 1, torch.full_like(item_nodes, -1))
    popularity = model.global_popularity(graph, item_nodes)[None, :].expand_as(scores)
    own = torch.zeros_like(scores, dtype=torch.bool)
    rows, seen_nodes = graph.seen_pairs(user_nodes)
    own[rows, graph.node_local[seen_nodes]] = True
    recency = torch.zeros_like(scores)
    rows, recent_nodes, values = model.own_recency(graph, user_nodes)
    recency[rows, graph.node_local[recent_nodes]] = values
    keep = lambda matrix: matrix[:, observed].cpu()  # noqa: E731
    terms = {"returning": [keep(popularity.masked_fill(own, 0.0)), keep(recency)], "new": [keep(popularity)]}
    return keep(scores), terms, column_of_item.cpu()


def _add_ranking_figures(sums: dict, greater: torch.Tensor, equal: torch.Tensor) -> None:
    sums["mrr"] += float(ranking.reciprocal_rank(greater, equal).sum())
    sums["hits@10"] += float(ranking.recall_at_k(greater, equal, 10).sum())
    sums["recall@20"] += float(ranking.recall_at_k(greater, equal, 20).sum())
    sums["ndcg@20"] += float(ranking.ndcg_at_k(greater, equal, 20).sum())


def train(model: TemporalGAT, graph: TemporalGraph, history: InteractionBatch, validation: InteractionBatch | None,
          users: IdMap, items: IdMap, config: TrainConfig) -> dict:
    """Trains in place, leaves the best weights in `model` and the buffer at the end of history+validation.
    `users` and `items` are the model's id maps, with every id of history and validation registered."""
    history_events = Events.of(history, users, items)
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        for name in CHOSEN_WEIGHTS:  # trained without the chosen terms; chosen again below
            getattr(model, name).zero_()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    best, best_state, since_best, epochs, best_weights = -1.0, None, 0, [], {}
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        graph.clear()
        model.train()
        total, steps = 0.0, 0
        bar = tqdm(list(history_events.batches(config.batch_size)), desc=f"epoch {epoch}", disable=not config.progress)
        for batch in bar:
            loss = batch_loss(model, graph, batch, config.negatives, generator, config.in_batch_negatives)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            graph.insert(batch.users, batch.items, batch.types, batch.ts)
            total, steps = total + float(loss.detach()), steps + 1
            if steps % 20 == 0:
                bar.set_postfix(loss=f"{total / steps:.4f}")
        record = {"epoch": epoch, "loss": total / max(steps, 1)}
        if validation is not None and len(validation):
            # the catalogue and the known users at the start of validation: those of the training part
            record["validation"] = evaluate_stream(model, graph, validation, users, items, IdMap(history.items),
                                                   set(history.users), config.batch_size, config.progress,
                                                   blends=config.blends())
        record["seconds"] = round(time.perf_counter() - started, 2)
        epochs.append(record)
        if config.progress:
            tqdm.write(f"epoch {epoch}: {record}")
        metric = record.get("validation", {}).get("mrr", -record["loss"])
        if metric > best:
            best, best_state, since_best = metric, copy.deepcopy(model.state_dict()), 0
            best_weights = {name: record.get("validation", {}).get(name, 0.0) for name in CHOSEN_WEIGHTS}
        else:
            since_best += 1
            if since_best > config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        for name, weight in best_weights.items():  # the (epoch, weights) best on validation
            getattr(model, name).fill_(weight)
    model.eval()
    best_epoch = max(epochs, key=lambda r: r.get("validation", {}).get("mrr", -r["loss"]))
    return {"epochs": epochs, "best_epoch": best_epoch["epoch"], "validation": best_epoch.get("validation")}
