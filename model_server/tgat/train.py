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
from ..early_stopping import EarlyStopping
from ..ids import IdMap
from ..streaming import RankedBatch, rank_then_observe
from .graph_state import TemporalGraph, type_index
from .model import TemporalGAT


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 200  # training events per step
    # the harness's test batch size (0: batch_size). Epochs are compared on validation passes in training batches;
    # where this differs, the best epoch's weights are chosen again on one pass in these batches (per event: 1),
    # so that they are chosen under the protocol the test part is ranked by
    validation_batch_size: int = 0
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
    # weights of the shared-attributes term (model.py), tried only where items have a category or a brand (the
    # candidates multiply); 1000 ranks the items like the user's newest one as a tier after the user's own items
    attribute_weights: tuple = (0.0, 1.0, 4.0, 1000.0)
    # half-lives of the recent popularity count tried beside the all-time count, as fractions of the training
    # part's time span: one decade apart from a thousandth of the span (hours on Wikipedia's month, a few hours
    # on MovieLens's months) to the span itself (nearly all-time, but an item's old users count half), so one
    # grid fits streams of minutes or of years; the windowed heuristic's choices (ML-100K ~43 days of a ~150-day
    # training span, ~span/3.5) fall between two of them, within a factor of sqrt(10)
    recent_half_life_fractions: tuple = (0.001, 0.01, 0.1, 1.0)
    returning_half_lives: bool = True  # also try them for users with edges (the candidates multiply)
    seed: int = 0
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def blends(self, half_lives: tuple = (), attributes: bool = False) -> dict:
        """{chosen weight name: grid tried on validation}; `half_lives` (ms) the recent counts' grid;
        `attributes`: whether any item has a category or a brand (else the shared-attributes term stays off)."""
        grid = (0,) + tuple(half_lives)  # 0: the all-time count, first so that it wins ties
        return {
            "popularity_weight": self.popularity_weights,
            "own_recency_weight": self.own_recency_weights,
            "attribute_weight": self.attribute_weights if attributes else (0.0,),
            "new_user_popularity_weight": self.new_user_popularity_weights,
            "popularity_half_life": grid if self.returning_half_lives else (0,),
            "new_user_popularity_half_life": grid,
        }

    def half_lives(self, ts) -> tuple:
        """The half-lives (ms) of the recent popularity counts: the fractions of the span of the times `ts`."""
        ts = list(ts)
        span = (max(ts) - min(ts)) if ts else 0
        return (
            tuple(sorted({max(1, int(round(span * f))) for f in self.recent_half_life_fractions})) if span > 0 else ()
        )


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
        return cls(
            torch.tensor(users.lookup(batch.users), dtype=torch.long),
            torch.tensor(items.lookup(batch.items), dtype=torch.long),
            type_index(batch.types),
            torch.tensor(batch.ts, dtype=torch.long),
        )

    def __len__(self) -> int:
        return self.users.shape[0]

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield Events(
                self.users[start : start + size],
                self.items[start : start + size],
                self.types[start : start + size],
                self.ts[start : start + size],
            )


def batch_loss(
    model: TemporalGAT,
    graph: TemporalGraph,
    batch: Events,
    negatives: int,
    generator: torch.Generator,
    in_batch: bool = False,
) -> torch.Tensor:
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


BATCH_COST_WINDOW = 20  # batches averaged at each end of an epoch
BATCH_COST = ("batches", "batch_seconds_first", "batch_seconds_last", "batch_seconds_ratio")  # batch_cost's names


def batch_cost(seconds: list[float], window: int = BATCH_COST_WINDOW) -> dict:
    """Seconds per training batch, mean of the first and of the last `window` batches of an epoch (issue 31:
    the cost of a step must follow the batch, not the history folded in before it), and their ratio."""
    if not seconds:
        return {}
    first = sum(seconds[:window]) / len(seconds[:window])
    last = sum(seconds[-window:]) / len(seconds[-window:])
    return dict(
        zip(BATCH_COST, (len(seconds), round(first, 4), round(last, 4), round(last / first, 2) if first else None))
    )


@torch.no_grad()
def evaluate_stream(
    model: TemporalGAT,
    graph: TemporalGraph,
    stream: InteractionBatch,
    users: IdMap,
    items: IdMap,
    catalogue: IdMap,
    known_users: set,
    batch_size: int,
    progress: bool = False,
    desc: str = "validate",
    blends: dict | None = None,
) -> dict:
    """Streaming full-catalogue ranking of `stream` by the loop that ranks the test part
    (model_server/streaming.py): each batch is scored from the state before it, then folded into `graph`; the
    targets and the new users come from the loop's `catalogue` (the items seen so far) and `known_users`,
    both advanced in place; an item not in the catalogue is a miss; a user without an edge is scored as
    serving scores a user never seen (score_new_user); ties count as half. So the early-stopping figure is the
    figure that is reported. `users` and `items` are the model's id maps (every id of `stream` registered).

    `blends` {chosen weight name: grid} (names of the model's chosen buffers, see CHOSEN_WEIGHTS) are tried as extra
    weights of the model's heuristic terms on the same pass (one state, many candidates, as the heuristics of
    Cornell et al. 2025 choose their variant): users with edges over every (popularity weight, own-recency weight,
    shared-attributes weight, popularity half-life) tuple, new users over every (new-user popularity weight,
    half-life) pair, chosen apart (their events are apart); half-life 0 is the all-time count. The figures returned are
    those of the best candidates by MRR (earliest in the grids on ties), and their weights under their names."""
    model.eval()
    candidates = _blend_candidates(blends)
    half_lives = sorted({c[-1] for grid in candidates.values() for c in grid})
    graph.ensure_half_lives(half_lives)
    totals = {part: {c: dict.fromkeys(FIGURES, 0.0) for c in grid} for part, grid in candidates.items()}
    item_of = _CatalogueItems(catalogue, items)
    bar = tqdm(total=len(stream), desc=desc, disable=not progress, leave=False)
    with_attributes = any(c[2] for c in candidates["returning"])  # else the term's matrix is not built

    def rank(batch: RankedBatch) -> None:
        scores, terms, column_of_item = _validation_batch(
            model, graph, Events.of(batch.events, users, items), half_lives, with_attributes
        )
        if scores.shape[1] != batch.catalogue_size:
            raise ValueError(f"the graph ranks {scores.shape[1]} items but the catalogue holds {batch.catalogue_size}")
        targets = _model_columns(batch.targets, item_of.indices(batch.catalogue_size), column_of_item)
        rankable = targets >= 0  # a miss adds nothing to any figure: only rankable rows are ranked
        for part, rows in (("returning", ~batch.new_user & rankable), ("new", batch.new_user & rankable)):
            if not bool(rows.any()):
                continue
            base, part_targets = scores[rows], targets[rows]
            popularity = {h: term[rows] for h, term in terms[part]["popularity"].items()}
            recency = terms[part]["recency"][rows] if "recency" in terms[part] else None
            shared = terms[part]["attributes"][rows] if "attributes" in terms[part] else None
            greater, equal = _candidate_counts(list(totals[part]), base, part_targets, popularity, recency, shared)
            # every candidate's figures at once: [candidates, rows] counts, one read of the sums
            sums_of = _ranking_sums(greater, equal)
            for sums, figures in zip(totals[part].values(), sums_of):
                for name, value in zip(FIGURES, figures):
                    sums[name] += value

    def observe(batch: InteractionBatch) -> None:
        events = Events.of(batch, users, items)
        graph.insert(events.users, events.items, events.types, events.ts)
        bar.update(len(batch))

    counts = {"returning": 0, "new": 0}

    def count(batch: RankedBatch) -> None:
        counts["new"] += int(batch.new_user.sum())
        counts["returning"] += int((~batch.new_user).sum())
        rank(batch)

    rank_then_observe(stream, batch_size, catalogue, known_users, count, observe)
    bar.close()
    n = len(stream)
    chosen = {
        part: max(grid, key=lambda c: (totals[part][c]["mrr"], -grid.index(c))) for part, grid in candidates.items()
    }
    figures = {name: sum(totals[part][chosen[part]][name] for part in candidates) / max(n, 1) for name in FIGURES}
    weights = dict(
        zip(
            ("popularity_weight", "own_recency_weight", "attribute_weight", "popularity_half_life"), chosen["returning"]
        )
    )
    by_part = {
        part: {"mrr": totals[part][chosen[part]]["mrr"] / max(counts[part], 1), "events": counts[part]}
        for part in candidates
    }
    return {
        **figures,
        "events": n,
        **weights,
        "new_user_popularity_weight": chosen["new"][0],
        "new_user_popularity_half_life": chosen["new"][1],
        "mrr_returning": by_part["returning"]["mrr"],
        "mrr_new": by_part["new"]["mrr"],
        "new_user_events": by_part["new"]["events"],
    }


FIGURES = ("mrr", "hits@10", "recall@20", "ndcg@20")
CHOSEN_WEIGHTS = (
    "popularity_weight",
    "own_recency_weight",
    "attribute_weight",
    "new_user_popularity_weight",
    "popularity_half_life",
    "new_user_popularity_half_life",
)
_HALF_LIVES = ("popularity_half_life", "new_user_popularity_half_life")  # integers (ms), 0: all-time


def _blend_candidates(blends: dict | None) -> dict:
    """{part: candidate tuples}: (popularity weight, own recency weight, attributes weight, half-life) for returning
    users, (new-user popularity weight, half-life) for new users; a weight without a grid is tried at 0 only, and a
    popularity weight of 0 with the first half-life only (the count does not matter then)."""
    grids = {name: tuple((blends or {}).get(name, (0,) if name in _HALF_LIVES else (0.0,))) for name in CHOSEN_WEIGHTS}
    returning = [
        (w, r, c, h)
        for w, r, c, h in itertools.product(
            grids["popularity_weight"],
            grids["own_recency_weight"],
            grids["attribute_weight"],
            grids["popularity_half_life"],
        )
        if w or h == grids["popularity_half_life"][0]
    ]
    new = [
        (w, h)
        for w, h in itertools.product(grids["new_user_popularity_weight"], grids["new_user_popularity_half_life"])
        if w or h == grids["new_user_popularity_half_life"][0]
    ]
    return {"returning": returning, "new": new}


class _CatalogueItems:
    """The model's item index of each catalogue item, extended as the catalogue grows (as the harness maps its
    catalogue to a model's columns)."""

    def __init__(self, catalogue: IdMap, items: IdMap) -> None:
        self.catalogue, self.items = catalogue, items
        self.index = torch.zeros(0, dtype=torch.long)

    def indices(self, n_catalogue: int) -> torch.Tensor:
        if self.index.shape[0] < n_catalogue:
            fresh = self.items.lookup(self.catalogue.ids[self.index.shape[0] : n_catalogue])
            self.index = torch.cat([self.index, torch.tensor(fresh, dtype=torch.long)])
        return self.index


def _model_columns(
    targets: torch.Tensor, item_of_catalogue: torch.Tensor, column_of_item: torch.Tensor
) -> torch.Tensor:
    """The loop's catalogue targets as columns of the model's scores (-1 stays a miss, and so does an item the
    model does not rank). A ranking does not depend on the order of its columns, so the model keeps its own."""
    out = torch.full_like(targets, -1)
    known = targets >= 0
    if bool(known.any()):
        item = item_of_catalogue[targets[known]]
        out[known] = torch.where(item >= 0, column_of_item[item.clamp(min=0)], torch.full_like(item, -1))
    return out


def _validation_batch(
    model: TemporalGAT, graph: TemporalGraph, batch: Events, half_lives=(0,), with_attributes: bool = False
):
    """(scores, {part: heuristic terms}, each item index's column or -1) of one batch, on CPU, one row per
    event, the columns restricted to the observed items in item order: the scores as served, and the terms
    whose weights are being chosen (the shared attributes only `with_attributes`)."""
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
    popularity = {h: model.popularity_count(graph, item_nodes, h)[None, :].expand_as(scores) for h in half_lives}
    own = torch.zeros_like(scores, dtype=torch.bool)
    rows, seen_nodes = graph.seen_pairs(user_nodes)
    own[rows, graph.node_local[seen_nodes]] = True
    recency = torch.zeros_like(scores)
    rows, recent_nodes, values = model.own_recency(graph, user_nodes)
    recency[rows, graph.node_local[recent_nodes]] = values
    keep = lambda matrix: matrix[:, observed].cpu()  # noqa: E731
    terms = {
        "returning": {
            "popularity": {h: keep(p.masked_fill(own, 0.0)) for h, p in popularity.items()},
            "recency": keep(recency),
        },
        "new": {"popularity": {h: keep(p) for h, p in popularity.items()}},
    }
    if with_attributes:
        shared = model.shared_attributes(graph, user_nodes, graph.node_local[item_nodes])
        terms["returning"]["attributes"] = keep(shared)
    return keep(scores), terms, column_of_item.cpu()


# above this many [candidates x rows x items] elements the candidates are ranked one at a time (a small batch,
# e.g. one event, ranks every candidate in one pass: per event on Wikipedia the loop's overhead was 8 ms an event)
_AT_ONCE_ELEMENTS = 1 << 22


def _candidate_counts(
    candidates: list,
    base: torch.Tensor,
    targets: torch.Tensor,
    popularity: dict,
    recency: torch.Tensor | None,
    shared: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[candidates, rows] (greater, equal) counts of each candidate's blend: base + weight * popularity[half-life]
    (+ recency weight * recency) (+ attributes weight * shared), the terms a candidate tuple weighs."""
    weights = torch.tensor(
        [[c[0], c[1] if recency is not None else 0.0, c[2] if shared is not None else 0.0] for c in candidates],
        dtype=base.dtype,
    )
    half_lives = [c[-1] for c in candidates]
    if len(candidates) * base.numel() <= _AT_ONCE_ELEMENTS:
        return _counts_at_once(weights, half_lives, base, targets, popularity, recency, shared)
    # buffers for every candidate, allocated once per batch: the candidates' loop allocates nothing that
    # outlives one candidate (small results kept between large temporaries fragmented the heap: the
    # REES46 fit's resident memory climbed by up to 10 GB within one batch's loop)
    blended, mask = torch.empty_like(base), torch.empty(base.shape, dtype=torch.bool)
    greater = torch.empty(len(candidates), len(targets), dtype=torch.long)
    equal = torch.empty_like(greater)
    for index, ((weight, recency_weight, attribute_weight), half_life) in enumerate(zip(weights.tolist(), half_lives)):
        if weight:
            torch.add(base, popularity[half_life], alpha=weight, out=blended)
        elif recency_weight or attribute_weight:
            blended.copy_(base)
        if recency_weight:
            blended.add_(recency, alpha=recency_weight)
        if attribute_weight:
            blended.add_(shared, alpha=attribute_weight)
        _count_into(
            blended if weight or recency_weight or attribute_weight else base,
            targets,
            mask,
            greater[index],
            equal[index],
        )
    return greater, equal


def _counts_at_once(
    weights: torch.Tensor,
    half_lives: list,
    base: torch.Tensor,
    targets: torch.Tensor,
    popularity: dict,
    recency: torch.Tensor | None,
    shared: torch.Tensor | None,
):
    """_candidate_counts as one [candidates, rows, items] tensor, term by term in the loop's order."""
    grid = sorted(set(half_lives))
    by_half_life = torch.stack([popularity[h] for h in grid])[[grid.index(h) for h in half_lives]]
    blended = base[None] + weights[:, 0, None, None] * by_half_life
    if recency is not None:
        blended += weights[:, 1, None, None] * recency[None]
    if shared is not None:
        blended += weights[:, 2, None, None] * shared[None]
    true = blended.gather(2, targets[None, :, None].expand(len(weights), -1, 1))
    return (blended > true).sum(2), (blended == true).sum(2) - 1


def _count_into(
    scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, greater: torch.Tensor, equal: torch.Tensor
) -> None:
    """ranking.rank_counts of rows whose targets are all rankable, written into `greater` and `equal` through
    the bool buffer `mask` (the shape of `scores`): validation ranks each batch once per candidate, in place."""
    true = scores.gather(1, targets[:, None])
    torch.sum(torch.gt(scores, true, out=mask), dim=1, out=greater)
    torch.sum(torch.eq(scores, true, out=mask), dim=1, out=equal)
    equal.sub_(1)  # the target itself


def _ranking_sums(greater: torch.Tensor, equal: torch.Tensor) -> list[list[float]]:
    """Per row of [candidates, events] counts: the sums of the FIGURES over the events."""
    return torch.stack(
        [
            ranking.reciprocal_rank(greater, equal).sum(1),
            ranking.recall_at_k(greater, equal, 10).sum(1),
            ranking.recall_at_k(greater, equal, 20).sum(1),
            ranking.ndcg_at_k(greater, equal, 20).sum(1),
        ],
        dim=1,
    ).tolist()


def _best_snapshot(model: TemporalGAT, record: dict) -> tuple[dict, dict]:
    """What a best epoch leaves to restore: its weights, and the chosen terms' weights its validation found."""
    validation = record.get("validation", {})
    return copy.deepcopy(model.state_dict()), {name: validation.get(name, 0.0) for name in CHOSEN_WEIGHTS}


def train(
    model: TemporalGAT,
    graph: TemporalGraph,
    history: InteractionBatch,
    validation: InteractionBatch | None,
    users: IdMap,
    items: IdMap,
    config: TrainConfig,
) -> dict:
    """Trains in place, leaves the best weights in `model` and the buffer at the end of history+validation.
    `users` and `items` are the model's id maps, with every id of history and validation registered."""
    history_events = Events.of(history, users, items)
    half_lives = config.half_lives(history.ts)
    graph.ensure_half_lives(half_lives)
    has_attributes = graph.side.has_attributes()
    generator = torch.Generator().manual_seed(config.seed)
    _set_chosen(model, dict.fromkeys(CHOSEN_WEIGHTS, 0))  # trained without the chosen terms; chosen again below
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    # a first best must beat -1.0, as it always had to: without a validation part (the figure is minus the loss),
    # an epoch whose loss is 1 or more is no best
    stopping: EarlyStopping[tuple[dict, dict]] = EarlyStopping(config.patience, floor=-1.0)
    epochs = []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        graph.clear()
        model.train()
        total, steps, batch_seconds = 0.0, 0, []
        bar = tqdm(list(history_events.batches(config.batch_size)), desc=f"epoch {epoch}", disable=not config.progress)
        for batch in bar:
            tick = time.perf_counter()
            loss = batch_loss(model, graph, batch, config.negatives, generator, config.in_batch_negatives)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            graph.insert(batch.users, batch.items, batch.types, batch.ts)
            total, steps = total + float(loss.detach()), steps + 1  # float(): the step has finished (CUDA too)
            batch_seconds.append(time.perf_counter() - tick)
            if steps % 20 == 0:
                bar.set_postfix(loss=f"{total / steps:.4f}")
        record = {"epoch": epoch, "loss": total / max(steps, 1), **batch_cost(batch_seconds)}
        if validation is not None and len(validation):
            # the catalogue and the known users at the start of validation: those of the training part
            record["validation"] = evaluate_stream(
                model,
                graph,
                validation,
                users,
                items,
                IdMap(history.items),
                set(history.users),
                config.batch_size,
                config.progress,
                blends=config.blends(half_lives, has_attributes),
            )
        record["seconds"] = round(time.perf_counter() - started, 2)
        epochs.append(record)
        if config.progress:
            tqdm.write(f"epoch {epoch}: {record}")
        if stopping.stop_after(
            record.get("validation", {}).get("mrr", -record["loss"]), lambda: _best_snapshot(model, record)
        ):
            break
    if stopping.best_state is not None:
        best_state, best_weights = stopping.best_state
        model.load_state_dict(best_state)
        _set_chosen(model, best_weights)  # the (epoch, weights) best on validation
    model.eval()
    best_epoch = max(epochs, key=lambda r: r.get("validation", {}).get("mrr", -r["loss"]))
    report = {
        "epochs": epochs,
        "best_epoch": best_epoch["epoch"],
        "validation": best_epoch.get("validation"),
        "half_lives_ms": list(half_lives),
    }
    if (
        stopping.best_state is not None
        and validation is not None
        and len(validation)
        and config.validation_batch_size not in (0, config.batch_size)
    ):
        report["validation"] = _choose_in_test_batches(
            model,
            graph,
            history_events,
            history,
            validation,
            users,
            items,
            config,
            config.blends(half_lives, has_attributes),
        )
        report["validation_batch_size"] = config.validation_batch_size
    return report


def _choose_in_test_batches(
    model: TemporalGAT,
    graph: TemporalGraph,
    history_events: Events,
    history: InteractionBatch,
    validation: InteractionBatch,
    users: IdMap,
    items: IdMap,
    config: TrainConfig,
    blends: dict,
) -> dict:
    """The best epoch's weights, chosen again on one validation pass in the test part's batches (e.g. one event
    at a time), from the state at the end of the training part; leaves the graph at the end of validation.
    Epochs are compared in training batches: a pass per event costs ~20 ms an event on Wikipedia's catalogue,
    once per fit rather than once per epoch."""
    _set_chosen(model, dict.fromkeys(CHOSEN_WEIGHTS, 0))  # the pass adds each candidate to the learned score alone
    graph.clear()
    for batch in history_events.batches(config.batch_size):
        graph.insert(batch.users, batch.items, batch.types, batch.ts)
    chosen = evaluate_stream(
        model,
        graph,
        validation,
        users,
        items,
        IdMap(history.items),
        set(history.users),
        config.validation_batch_size,
        config.progress,
        desc="validate in test batches",
        blends=blends,
    )
    _set_chosen(model, chosen)
    return chosen


@torch.no_grad()
def _set_chosen(model: TemporalGAT, weights: dict) -> None:
    """The model's chosen-weight buffers (CHOSEN_WEIGHTS) from `weights`, half-lives as integers."""
    for name in CHOSEN_WEIGHTS:
        value = weights.get(name, 0)
        getattr(model, name).fill_(int(value) if name in _HALF_LIVES else value)
