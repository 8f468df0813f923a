"""PopTrack (Daniluk & Dąbrowski, "Temporal graph models fail to capture global temporal dynamics", 2023,
arXiv 2309.15730): the optimisation-free "recently popular nodes" baseline. One global popularity vector P
over destinations; after each batch, P[v] += 1 for every event of the batch on v, then P *= decay. Every user
gets P as scores.

The decay is per batch, so the state depends on how the stream is batched: `fit` observes the training part
in the harness's batch size, and picks the decay from DECAYS by streaming MRR on the validation part (the
paper tunes it per data set the same way).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..contract import InteractionBatch, Recommender
from .popularity import _grow
from .selection import best, in_batches, probes_mrr

# 0.5 was the edge of a first grid and was chosen on wikipedia validation: the grid now reaches below it
DECAYS = (0.1, 0.25, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999)
DEFAULT_DECAY = 0.99  # without a validation part, or observed before any fit (a live worker)
NEGLIGIBLE = 1e-200  # popularity below this is set to 0: float64 denormals would make every multiply slow


class PopTrack(Recommender):
    name = "poptrack"

    def __init__(self, decay: float | None = None, batch_size: int = 200) -> None:
        super().__init__()
        self.decay = decay
        self.batch_size = batch_size
        self.popularity = torch.zeros(0, dtype=torch.float64)
        self.validation_mrr: dict = {}

    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        if self.decay is None:
            self.decay = self.choose_decay(history, validation)
        in_batches(self.observe, history, self.batch_size)

    def choose_decay(self, history: InteractionBatch, validation: InteractionBatch | None) -> float:
        """The decay of DECAYS with the best streaming MRR on `validation`, each tried on a fresh probe that
        observed `history`; this model's own state is untouched (Base3 calls it before observing)."""
        if validation is None or not len(validation):
            return DEFAULT_DECAY
        probes = {decay: PopTrack(decay, self.batch_size) for decay in DECAYS}
        for probe in probes.values():
            in_batches(probe.observe, history, self.batch_size)
        mrr = probes_mrr(probes, validation, self.batch_size)
        chosen = best(mrr, DECAYS)
        self.validation_mrr = {"decay": chosen, "mrr": mrr[chosen], "all": mrr}
        return chosen

    @property
    def params(self) -> dict:
        """What `streamrec eval` records in report.json: the decay in use and its validation MRR."""
        return {"decay": self.decay, "validation_mrr": self.validation_mrr.get("mrr")}

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self.popularity = _grow(self.popularity, len(self.items))
        self.popularity.index_add_(0, items, torch.ones(len(items), dtype=torch.float64))
        self.popularity *= self.decay if self.decay is not None else DEFAULT_DECAY
        self.popularity[self.popularity < NEGLIGIBLE] = 0.0

    def normalised(self) -> torch.Tensor:
        """P / max P over the catalogue, in [0, 1] (zeros before any event): the popularity signal of Base3."""
        vector = _grow(self.popularity, len(self.items))[: len(self.items)]
        return vector / vector.max().clamp(min=1e-300) if len(vector) else vector

    def score(self, users: Sequence[str]) -> torch.Tensor:
        self.popularity = _grow(self.popularity, len(self.items))
        return self.popularity[: len(self.items)].float().unsqueeze(0).expand(len(users), -1).clone()
