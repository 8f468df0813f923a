"""Base3 (Kondrup, "Base3: a simple interpolation-based ensemble method for robust dynamic link prediction",
TGL workshop @ KDD 2025, arXiv 2506.12764): a training-free interpolation of three signals,

    score(u, v) = alpha * EdgeBank(u, v) + beta * PopTrack(v) + delta * CoOccurrence(u, v),

where the weights depend on EdgeBank's verdict: one triple when (u, v) was observed before (the paper's
default (0.5, 0.2, 0.3), trusting the repeat) and another when it was not ((0.2, 0.3, 0.5), leaning on
context and popularity; EdgeBank is 0 there, so alpha drops out). The three are the existing models:
EdgeBank with unlimited memory (edgebank.py), PopTrack (poptrack.py, its decay chosen on validation) and the
item co-occurrence model (cooccurrence.py) standing in for the paper's t-CoMem memory of co-occurring nodes.

Each signal is brought to [0, 1] first: EdgeBank is 0/1; PopTrack is divided by its maximum (the paper's
indicator of the top-K popular nodes would tie the rest of a full-catalogue ranking); co-occurrence scores
are divided by each user's maximum. Both weight triples are chosen together on the validation part, by
streaming MRR, among WEIGHT_GRID and the paper's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender
from .cooccurrence import ItemCooccurrence
from .edgebank import EdgeBank
from .poptrack import PopTrack
from .selection import best, in_batches, streaming_mrr

Triple = tuple[float, float, float]  # (alpha: EdgeBank, beta: PopTrack, delta: co-occurrence)


@dataclass(frozen=True)
class Weights:
    seen: Triple  # for pairs (u, v) EdgeBank has observed
    unseen: Triple  # for every other pair


PAPER_WEIGHTS = Weights(seen=(0.5, 0.2, 0.3), unseen=(0.2, 0.3, 0.5))
ALPHAS = (0.05, 0.2, 0.5, 0.8)  # 0.05: the lowest of a first grid (0.2) was chosen on validation
POPULARITY_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # of what alpha leaves, the share going to PopTrack


def _triples() -> list[Triple]:
    return [(a, (1 - a) * s, (1 - a) * (1 - s)) for a in ALPHAS for s in POPULARITY_SHARES]


WEIGHT_GRID = [PAPER_WEIGHTS] + [Weights(seen, unseen) for seen in _triples() for unseen in _triples()]


def _row_normalise(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.max(dim=1, keepdim=True).values.clamp(min=1e-12) if matrix.shape[1] else matrix


class Base3(Recommender):
    name = "base3"

    def __init__(self, weights: Weights | None = None, batch_size: int = 200) -> None:
        super().__init__()
        self.weights = weights
        self.batch_size = batch_size
        self.edgebank = EdgeBank()
        self.poptrack = PopTrack(batch_size=batch_size)
        self.cooccurrence = ItemCooccurrence()
        self.validation_mrr: dict = {}

    @property
    def components(self) -> tuple[Recommender, ...]:
        return self.edgebank, self.poptrack, self.cooccurrence

    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        self.poptrack.decay = self.poptrack.choose_decay(history, validation)
        in_batches(self.observe, history, self.batch_size)  # PopTrack's decay is per batch of the harness
        if self.weights is not None:
            return
        if validation is None or not len(validation):
            self.weights = PAPER_WEIGHTS
            return
        # the signals do not depend on the weights: one pass scores every candidate, then observes the batch
        mrr = streaming_mrr(
            validation,
            self.batch_size,
            self.items,
            lambda users: self._weighted_scores(users, WEIGHT_GRID),
            self.observe,
        )
        self.weights = best(mrr, WEIGHT_GRID)
        self.observes_validation_in_fit = True
        self.validation_mrr = {
            "weights": self.weights,
            "mrr": mrr[self.weights],
            "poptrack_decay": self.poptrack.decay,
            "all": mrr,
        }

    @property
    def params(self) -> dict:
        """What `streamrec eval` records in report.json: both weight triples, PopTrack's decay, validation MRR."""
        weights = self.weights or PAPER_WEIGHTS
        return {
            "weights_seen": [round(w, 4) for w in weights.seen],
            "weights_unseen": [round(w, 4) for w in weights.unseen],  # its alpha multiplies EdgeBank's 0
            "poptrack_decay": self.poptrack.decay,
            "validation_mrr": self.validation_mrr.get("mrr"),
        }

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        for component in self.components:  # each keeps its own id maps, filled in the same order as ours
            component.observe(batch)

    def observe_items(self, items) -> None:
        super().observe_items(items)
        for component in self.components:
            component.observe_items(items)

    def _signals(self, users: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(seen [rows, n] bool, popularity [1, n], co-occurrence [rows, n]), each in [0, 1]."""
        n_items = len(self.items)
        seen = self.edgebank.score(users)[:, :n_items] > 0
        popularity = self.poptrack.normalised()[:n_items].float().unsqueeze(0)
        co = _row_normalise(self.cooccurrence.score(users)[:, :n_items].float().clamp(min=0.0))
        return seen, popularity, co

    def _weighted_scores(self, users: Sequence[str], wanted: Sequence[Weights]):
        """(weights, [len(users), n_items] scores) pairs; the part for seen and for unseen pairs of each
        triple is computed once and shared by every pair of triples that uses it."""
        seen, popularity, co = self._signals(users)
        parts: dict[tuple[Triple, bool], torch.Tensor] = {}

        def part(triple: Triple, is_seen: bool) -> torch.Tensor:
            if (triple, is_seen) not in parts:
                alpha, beta, delta = triple
                parts[(triple, is_seen)] = (alpha if is_seen else 0.0) + beta * popularity + delta * co
            return parts[(triple, is_seen)]

        for weights in wanted:
            yield weights, torch.where(seen, part(weights.seen, True), part(weights.unseen, False))

    def score(self, users: Sequence[str]) -> torch.Tensor:
        weights = self.weights or PAPER_WEIGHTS
        _, scores = next(self._weighted_scores(users, [weights]))
        return scores
