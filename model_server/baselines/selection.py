"""Choosing a heuristic's variant or parameters on the validation part, by the harness's own streaming MRR.

Every candidate is judged the way the test part is, by the one streaming loop (model_server/streaming.py): the
validation part goes in batches; each event of a batch is ranked against every item observed so far, before the
batch is observed; an item never observed before is a miss. Candidates that share one state (the weights of Base3, the
variants of recency_popularity) are scored side by side in a single pass, so choosing among many costs one pass.
"""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Sequence

import torch

from ..contract import InteractionBatch, Recommender
from ..ids import IdMap
from ..ranking import rank_counts, reciprocal_rank
from ..streaming import RankedBatch, batches, rank_then_observe

# users -> (candidate, [len(users), n_items] scores) pairs; a generator keeps one candidate's matrix alive at a time
CandidateScores = Callable[[Sequence[str]], Iterable[tuple[Hashable, torch.Tensor]]]


def streaming_mrr(
    stream: InteractionBatch,
    batch_size: int,
    items: IdMap,
    score_candidates: CandidateScores,
    observe: Callable[[InteractionBatch], None],
) -> dict[Hashable, float]:
    """{candidate: MRR over `stream`}. `items` is the id map the scores' columns follow; `observe` folds a
    batch into the state the candidates score from, after the batch is ranked."""
    totals: dict[Hashable, float] = {}

    def rank(batch: RankedBatch) -> None:
        for candidate, scores in score_candidates(batch.users):
            greater, equal = rank_counts(scores[batch.rows], batch.targets)
            totals[candidate] = totals.get(candidate, 0.0) + float(reciprocal_rank(greater, equal).sum())

    # `items` is the model's own map: its observe registers each batch's items, so the loop adds none
    rank_then_observe(stream, batch_size, items, set(), rank, observe)
    return {candidate: total / max(len(stream), 1) for candidate, total in totals.items()}


def probes_mrr(probes: dict[Hashable, Recommender], stream: InteractionBatch, batch_size: int) -> dict[Hashable, float]:
    """{candidate: MRR over `stream`} for candidates that each need a state of their own (a decay, a half-life):
    one probe per candidate, every probe a fresh model that observed the same history, so their item maps agree.
    They are scored side by side in one pass, and each observes every batch after it is ranked."""

    def observe_all(batch: InteractionBatch) -> None:
        for probe in probes.values():
            probe.observe(batch)

    reference = next(iter(probes.values()))  # every probe registers the items in the same order
    return streaming_mrr(
        stream,
        batch_size,
        reference.items,
        lambda users: ((candidate, probe.score(users)) for candidate, probe in probes.items()),
        observe_all,
    )


def best(mrr_by_candidate: dict[Hashable, float], order: Sequence[Hashable]) -> Hashable:
    """The candidate with the highest MRR; on a tie the one listed first in `order` (deterministic)."""
    return max(order, key=lambda candidate: (mrr_by_candidate.get(candidate, -1.0), -order.index(candidate)))


def in_batches(model_observe: Callable[[InteractionBatch], None], stream: InteractionBatch, batch_size: int) -> None:
    """Observe `stream` in the harness's batch size: for a state updated per batch (PopTrack's decay) the
    training part must pass the same way the test part will."""
    for batch in batches(stream, batch_size):
        model_observe(batch)
