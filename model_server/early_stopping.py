"""Early stopping on a validation figure: one rule for every model trained in epochs (the temporal GAT, TGN and
SASRec), so that they cannot drift apart in what counts as better or when to stop."""

from __future__ import annotations

import math
from typing import Callable, Generic, TypeVar

State = TypeVar("State")


class EarlyStopping(Generic[State]):
    """Keeps the best epoch's snapshot by a figure where higher is better (a validation MRR, or minus the training
    loss when there is no validation part) and says when to stop: once more than `tolerated` epochs in a row
    brought no strictly better figure. `floor` is what a figure must beat to be the first best (by default any
    figure is); best_state stays None while no epoch has."""

    def __init__(self, tolerated: int, floor: float = -math.inf) -> None:
        self.tolerated = tolerated
        self.best = floor
        self.best_state: State | None = None
        self.since_best = 0

    def stop_after(self, figure: float, snapshot: Callable[[], State]) -> bool:
        """One epoch's figure. `snapshot()` is taken only for a new best (a snapshot may be costly, or have effects
        of its own, such as flushing a model's pending state). True when training should stop now."""
        if figure > self.best:
            self.best, self.best_state, self.since_best = figure, snapshot(), 0
            return False
        self.since_best += 1
        return self.since_best > self.tolerated
